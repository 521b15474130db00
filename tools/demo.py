"""`make demo`: post a stream of sample orders to a running pipeline and watch them move.

Mostly good cards, some declines, some orders for the scarce desk lamp, some cancelled by
the customer right after placing and some delivered ones returned (the warehouse then
reports the parcel received), so the happy path, every compensation and the returns saga
all show. Needs `make run` in another terminal.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from kit.settings import REPO_ROOT
from kit.testing.gateway import gateway_client

SKUS = ["MUG-BLUE", "TEE-BLACK-M", "SOCKS-3PK", "BOTTLE-1L", "POSTER-A2", "LAMP-DESK"]
TOKENS = ["tok_visa"] * 8 + ["tok_mastercard", "tok_chargeDeclined"]
TERMINAL = {"COMPLETED", "CANCELLED", "RETURNED"}
CANCEL_SHARE, RETURN_SHARE = 0.1, 0.2


def sample_order(n: int) -> dict[str, object]:
    lines = random.sample(SKUS, k=random.randint(1, 3))
    return {
        "customer": {"id": f"demo-{n % 7}", "email": f"demo{n % 7}@example.com", "name": "Demo"},
        "shipping_address": {
            "name": "Demo Customer",
            "line1": "1 Harbour Road",
            "city": "Hamburg",
            "postal_code": "20457",
            "country": "DE",
        },
        "lines": [{"sku": sku, "quantity": random.randint(1, 2)} for sku in lines],
        "payment_token": random.choice(TOKENS),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--orders", type=int, default=30)
    parser.add_argument("--warehouse", default="http://127.0.0.1:8003", help="fulfillment")
    parser.add_argument(
        "--api-key-file",
        type=Path,
        default=REPO_ROOT / ".run" / "dev-api-key",
        help="the storefront API key 'make run' created",
    )
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second")
    args = parser.parse_args()
    placed: list[str] = []
    to_return: set[str] = set()
    if not args.api_key_file.exists():
        print(f"no API key in {args.api_key_file}: start the pipeline with 'make run'")
        return 1
    api_key = args.api_key_file.read_text().strip()
    with (
        gateway_client(args.gateway, api_key) as http,
        httpx.Client(base_url=args.warehouse, timeout=10) as warehouse,
    ):
        try:
            http.get("/health").raise_for_status()
        except httpx.HTTPError:
            print(f"no pipeline at {args.gateway}: start it with 'make run'", file=sys.stderr)
            return 1
        deadline = time.monotonic() + args.orders / args.rate + 60
        next_send = time.monotonic()
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            while len(placed) < args.orders and time.monotonic() >= next_send:
                response = http.post("/v1/orders", json=sample_order(len(placed)))
                if response.status_code != 202:
                    print(f"rejected: {response.status_code} {response.text}")
                else:
                    order_id = response.json()["order_id"]
                    placed.append(order_id)
                    if random.random() < CANCEL_SHARE:
                        http.post(f"/v1/orders/{order_id}/cancel")
                    elif random.random() < RETURN_SHARE:
                        to_return.add(order_id)
                next_send += 1 / args.rate
            for order_id in placed:
                if statuses.get(order_id) not in TERMINAL or order_id in to_return:
                    order = http.get(f"/v1/orders/{order_id}").json()
                    statuses[order_id] = order["status"]
                    advance_return(http, warehouse, order, to_return)
            counts = Counter(statuses.values())
            print(
                f"{time.strftime('%H:%M:%S')}  placed {len(placed):3d}  "
                + "  ".join(f"{status.lower()} {n}" for status, n in sorted(counts.items()))
            )
            settled = all(s in TERMINAL for s in statuses.values())
            if len(placed) == args.orders and settled and not to_return:
                break
            time.sleep(1)
    last = placed[-1] if placed else None
    if last:
        print(f"\nlast order: curl -s {args.gateway}/v1/orders/{last}")
    return 0


def advance_return(
    http: httpx.Client, warehouse: httpx.Client, order: dict[str, Any], to_return: set[str]
) -> None:
    """Returns the first line of a delivered order; the warehouse receives it once labelled."""
    order_id = order["order_id"]
    if order_id not in to_return:
        return
    if order["status"] == "CANCELLED":
        to_return.discard(order_id)
    elif order["status"] == "COMPLETED":
        line = order["lines"][0]
        body = {"lines": [{"sku": line["sku"], "quantity": 1}], "reason": "changed my mind"}
        http.post(f"/v1/orders/{order_id}/returns", json=body)
    elif order["status"] == "RETURN_REQUESTED" and order["returns"][-1]["label_reference"]:
        warehouse.post(f"/v1/returns/{order['returns'][-1]['return_id']}/received")
        to_return.discard(order_id)


if __name__ == "__main__":
    sys.exit(main())

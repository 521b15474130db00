"""`make demo`: post a stream of sample orders to a running pipeline and watch them move.

Mostly good cards, some declines and some orders for the scarce desk lamp, so both the
happy path and the cancellations show. Needs `make run` in another terminal.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

import httpx

SKUS = ["MUG-BLUE", "TEE-BLACK-M", "SOCKS-3PK", "BOTTLE-1L", "POSTER-A2", "LAMP-DESK"]
TOKENS = ["tok_visa"] * 8 + ["tok_mastercard", "tok_chargeDeclined"]
TERMINAL = {"COMPLETED", "CANCELLED"}


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
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second")
    args = parser.parse_args()
    placed: list[str] = []
    with httpx.Client(base_url=args.gateway, timeout=10) as http:
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
                    placed.append(response.json()["order_id"])
                next_send += 1 / args.rate
            for order_id in placed:
                if statuses.get(order_id) not in TERMINAL:
                    statuses[order_id] = http.get(f"/v1/orders/{order_id}").json()["status"]
            counts = Counter(statuses.values())
            print(
                f"{time.strftime('%H:%M:%S')}  placed {len(placed):3d}  "
                + "  ".join(f"{status.lower()} {n}" for status, n in sorted(counts.items()))
            )
            if len(placed) == args.orders and all(s in TERMINAL for s in statuses.values()):
                break
            time.sleep(1)
    last = placed[-1] if placed else None
    if last:
        print(f"\nlast order: curl -s {args.gateway}/v1/orders/{last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

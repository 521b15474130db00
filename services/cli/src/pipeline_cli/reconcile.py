"""`pipeline reconcile`: do the five services' books agree? For an engineer, cron or CI.

Reads every service's database (read-only where the backend allows), runs the checks of
`reconcile_checks` and prints one verdict per check with examples of what is off.
Exit status: 0 all consistent, 1 inconsistencies found, 2 a database could not be read
(or the options were wrong).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

import typer

from pipeline_cli.reconcile_books import UnreadableDatabaseError, default_url, read_books
from pipeline_cli.reconcile_checks import CheckResult, Judging, run_checks, short_duration

CONSISTENT, INCONSISTENT, UNREADABLE = 0, 1, 2
# The ages `pipeline events` takes (90s, 15m, 2h, 1d, 1w), and their sums (1h30m).
_DURATION = re.compile(r"(\d+)([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str | timedelta) -> timedelta:
    """`90s`, `15m`, `1h30m`, `2d`, `1w`; a bare number is seconds."""
    if isinstance(value, timedelta):
        return value  # a default
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    parts = _DURATION.findall(text)
    if not parts or "".join(n + unit for n, unit in parts) != text:
        raise typer.BadParameter(f"{text!r} is not a duration like 90s, 15m, 1h30m or 2d")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[unit] for n, unit in parts))


def _db_option(service: str) -> Any:
    return typer.Option(
        f"--{service}-db",
        envvar=f"{service.upper()}_DATABASE_URL",
        metavar="URL",
        help=f"SQLAlchemy URL of the {service} database (default: make run's .run/{service}.db)",
        show_default=False,
    )


def reconcile(
    orders_db: Annotated[str | None, _db_option("orders")] = None,
    inventory_db: Annotated[str | None, _db_option("inventory")] = None,
    payments_db: Annotated[str | None, _db_option("payments")] = None,
    fulfillment_db: Annotated[str | None, _db_option("fulfillment")] = None,
    notifications_db: Annotated[str | None, _db_option("notifications")] = None,
    older_than: Annotated[
        timedelta,
        typer.Option(
            parser=parse_duration,
            metavar="AGE",
            help="An order unsettled in its status for this long is reported stuck",
            show_default="15m",
        ),
    ] = timedelta(minutes=15),
    settle: Annotated[
        timedelta,
        typer.Option(
            parser=parse_duration,
            metavar="AGE",
            help="Judge only orders whose last change is this old (in-flight ones are not off)",
            show_default="60s",
        ),
    ] = timedelta(seconds=60),
    examples: Annotated[
        int, typer.Option(min=0, help="Problems shown per check (all are counted)")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts")] = False,
) -> None:
    """Cross-service consistency report: stuck orders, stock, money, refunds, shipments.

    Exit status: 0 all consistent, 1 something is off, 2 a database cannot be read.
    """
    given = {
        "orders": orders_db,
        "inventory": inventory_db,
        "payments": payments_db,
        "fulfillment": fulfillment_db,
        "notifications": notifications_db,
    }
    urls = {service: url or default_url(service) for service, url in given.items()}
    try:
        books = read_books(urls)
    except UnreadableDatabaseError as error:
        where = f"--{error.service}-db or {error.service.upper()}_DATABASE_URL"
        typer.echo(f"pipeline reconcile: {error} (the URL comes from {where})", err=True)
        raise typer.Exit(UNREADABLE) from error
    judging = Judging(books.read_at, settle=settle, older_than=older_than)
    results = run_checks(books, judging)
    judged = sum(1 for order in books.orders.values() if judging.judged(order))
    if as_json:
        typer.echo(json.dumps(_as_json(results, judging, len(books.orders), judged, examples)))
    else:
        _print_report(results, judging, len(books.orders), judged, examples)
    raise typer.Exit(CONSISTENT if all(r.ok for r in results) else INCONSISTENT)


def _print_report(
    results: Sequence[CheckResult], judging: Judging, orders: int, judged: int, examples: int
) -> None:
    typer.echo(
        f"{orders} order{'s' if orders != 1 else ''} read at"
        f" {judging.now.isoformat(timespec='seconds')}; {judged} judged"
        f" (last changed {short_duration(judging.settle)} or more before)"
    )
    width = max(len(r.name) for r in results)
    for result in results:
        mark = "ok  " if result.ok else "FAIL"
        typer.echo(f"{mark} {result.name:<{width}}  {result.verdict}")
        for finding in result.findings[:examples]:
            typer.echo(f"       {finding}")
        if len(result.findings) > examples:
            typer.echo(f"       … and {len(result.findings) - examples} more (--examples N)")
    failed = [r.name for r in results if not r.ok]
    if failed:
        typer.echo(f"INCONSISTENT: {', '.join(failed)}")
    else:
        typer.echo("consistent")


def _as_json(
    results: Sequence[CheckResult], judging: Judging, orders: int, judged: int, examples: int
) -> dict[str, Any]:
    return {
        "consistent": all(r.ok for r in results),
        "read_at": judging.now.isoformat(),
        "settle_s": judging.settle.total_seconds(),
        "older_than_s": judging.older_than.total_seconds(),
        "orders": orders,
        "judged": judged,
        "checks": [
            {
                "name": result.name,
                "ok": result.ok,
                "verdict": result.verdict,
                "checked": dict(result.checked),
                "problems": len(result.findings),
                "examples": [
                    {"subject": finding.subject, "detail": finding.detail}
                    for finding in result.findings[:examples]
                ],
            }
            for result in results
        ],
    }

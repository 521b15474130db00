"""`pipeline replay SERVICE --into URL`: a service's own handlers run again over a range of
its topics, into its read model or a fresh database, with no side effect (`kit.replay`);
`pipeline replay compare`: rebuilt orders against the live ones.

What each service does under a replay:

- orders: replayed. It reads the topics it consumes and its own orders.events and
  orders.commands, where the log records every saga input that is no other service's event
  (OrderPlaced, a customer's cancel or return, a deadline, the timer's re-sends), and
  rebuilds status, returns and timeline, naming the messages the saga sent by the ids they
  had (`orders.replay`). The saga calls nothing outside the process.
- notifications: replayed through a channel that sends nothing; the log is rebuilt.
- payments, fulfillment, inventory: refused (see REFUSED): their handlers move money or
  goods, or their state starts from something no event records.

Nothing is published: what the handlers emit is counted, not written to the outbox, unless
`--emit`. The inbox makes a replay idempotent: run it twice, the second changes nothing.
The range is read into memory first (a day of a busy pipeline is a lot: replay in pieces
with --from/--to), then handled in production-timestamp order across every topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kit.database import create_database_engine
from kit.records import StoredRecord
from kit.replay import DEFAULT_BATCH, Replayable, ReplayReport, replay
from notifications.replay import SuppressedChannel
from notifications.replay import replayable as notifications_replayable
from orders.replay import TOPICS as ORDERS_TOPICS
from orders.replay import OrdersReplay
from orders.replay_compare import OrderView, differences, read_orders
from orders.settings import OrdersSettings
from pipeline_cli.kafka_io import (
    POSITION_HELP,
    Edge,
    KafkaSettings,
    Position,
    position_option,
    progress_bar,
    read_range,
    reported_errors,
)

app = typer.Typer(
    help="Re-run a service's handlers over a range of its topics into a database, with no "
    "side effect; compare a rebuilt orders read model with the live one.",
    no_args_is_help=True,
)

REFUSED = {
    "payments": "its handlers capture and refund through the payment provider, and a replay "
    "must never move money. Its facts are on payments.events (PaymentCaptured, PaymentFailed, "
    "PaymentRefunded): the orders replay reads them.",
    "fulfillment": "its handlers book the carrier (shipments, return labels), and a replay "
    "must never ship anything. Its facts are on fulfillment.events: the orders replay reads "
    "them.",
    "inventory": "its stock levels start from the catalog seed (CATALOG_SEED_PATH), which no "
    "event records: the log alone cannot rebuild them.",
}

IntoOption = Annotated[
    str,
    typer.Option(
        "--into",
        help="Database URL to replay into (sqlite:///path or postgresql://…): a fresh one to "
        "rebuild, or the service's own; its tables are created if missing",
    ),
]
FromOption = Annotated[
    str | None, typer.Option("--from", help=f"First record: {POSITION_HELP}. Default: beginning")
]
ToOption = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Where to stop, not included: same forms as --from. Default: the end each topic "
        "had when the replay started",
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Run everything in one transaction, roll it back, print what changed"
    ),
]
EmitOption = Annotated[
    bool,
    typer.Option(
        "--emit",
        help="Write what the handlers emit to the target's outbox (its relay would publish "
        "it). Default: counted, never written",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the report as one JSON object")]
BatchOption = Annotated[
    int, typer.Option("--batch", min=1, help="Records per transaction, as the live consumer")
]
OrderOption = Annotated[
    list[str] | None,
    typer.Option("--order", help="Compare only this order (repeat). Default: every replayed one"),
]


@app.command()
def orders(
    into: IntoOption,
    start: FromOption = None,
    stop: ToOption = None,
    dry_run: DryRunOption = False,
    emit: EmitOption = False,
    compare_with: Annotated[
        str | None,
        typer.Option(
            "--compare-with",
            help="The live orders database: compare the rebuilt orders with it afterwards and "
            "exit 1 on any difference",
        ),
    ] = None,
    order_ids: OrderOption = None,
    as_json: JsonOption = False,
    batch: BatchOption = DEFAULT_BATCH,
) -> None:
    """Rebuild the orders read model (status, returns, timeline) from the topics alone.

    Reads inventory/payments/fulfillment/notifications.events and the orders
    service's own orders.events and orders.commands over the range. Orders
    placed before --from are not rebuilt; events about them are counted and
    skipped.

    Examples:

        pipeline replay orders --into sqlite:///rebuilt.db --from 1d \\
            --compare-with "$DATABASE_URL"

        pipeline replay orders --into "$DATABASE_URL" --dry-run
    """
    if dry_run and compare_with:
        raise typer.BadParameter("a dry run keeps nothing to compare", param_hint="--compare-with")
    with _reported_errors():
        settings = KafkaSettings()
        schemas = settings.schemas()
        records = _read(ORDERS_TOPICS, start, stop)
        rebuild = OrdersReplay(OrdersSettings(), records, schemas)
        report = _replay(rebuild.replayable(), records, into, dry_run, emit, batch)
        notes = vars(rebuild.notes)
        found = None if compare_with is None else compare(compare_with, into, order_ids)
    if as_json:
        typer.echo(json.dumps({**report.as_json(), "notes": notes, "differences": found}))
    else:
        _print_report(report, into)
        typer.echo(
            f"orders: {notes['outside_range']} messages about orders placed before the range "
            f"(skipped), {notes['resends']} timer re-sends reproduced, "
            f"{notes['not_reproduced']} recorded saga messages not reproduced"
        )
        if found is not None:
            _print_differences(found)
    if found:
        raise typer.Exit(1)


@app.command()
def notifications(
    into: IntoOption,
    start: FromOption = None,
    stop: ToOption = None,
    dry_run: DryRunOption = False,
    emit: EmitOption = False,
    as_json: JsonOption = False,
    batch: BatchOption = DEFAULT_BATCH,
) -> None:
    """Rebuild the notification log, sending nothing (the channel is suppressed).

    Example:

        pipeline replay notifications --into sqlite:///notifications.db --from 1d
    """
    channel = SuppressedChannel()
    with _reported_errors():
        topics = notifications_replayable(channel).topics
        records = _read(topics, start, stop)
        report = _replay(notifications_replayable(channel), records, into, dry_run, emit, batch)
    if as_json:
        typer.echo(json.dumps({**report.as_json(), "suppressed_sends": channel.suppressed}))
        return
    _print_report(report, into)
    typer.echo(f"notifications: {channel.suppressed} sends suppressed (nobody was told again)")


def _refusal(service: str) -> Callable[[], None]:
    def refuse() -> None:
        typer.echo(f"pipeline: {service} is not replayed: {REFUSED[service]}", err=True)
        raise typer.Exit(2)

    refuse.__doc__ = f"Refused: {REFUSED[service]}"
    return refuse


for _service in REFUSED:
    app.command(
        _service,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(_refusal(_service))


@app.command("compare")
def compare_command(
    live: Annotated[str, typer.Option("--live", help="The live orders database URL")],
    replayed: Annotated[str, typer.Option("--replayed", help="The rebuilt orders database URL")],
    order_ids: OrderOption = None,
) -> None:
    """Compare rebuilt orders with the live ones; exit 1 on any difference.

    Compared per order: status, cancel reason, totals, refunded, payment,
    shipment and tracking, awaited acknowledgements, lines, returns, and the
    timeline as the sequence of (event id, event type, source, status after,
    note). Not compared: when things happened (a replay runs at another time)
    and the storefront client, which OrderPlaced does not carry.
    """
    with _reported_errors():
        found = compare(live, replayed, order_ids)
    _print_differences(found)
    if found:
        raise typer.Exit(1)


def compare(live_url: str, replayed_url: str, order_ids: Collection[str] | None) -> list[str]:
    """The differences between the rebuilt orders (those of `order_ids`, or every one the
    rebuilt database has) and the same orders in the live database."""
    rebuilt = _orders(replayed_url, order_ids or None)
    live = _orders(live_url, order_ids or list(rebuilt))
    if order_ids:
        missing = set(order_ids) - set(live) - set(rebuilt)
        extra = [f"order {order_id}: in neither database" for order_id in sorted(missing)]
        return extra + differences(live, rebuilt)
    return differences(live, rebuilt)


def _orders(url: str, order_ids: Collection[str] | None) -> dict[str, OrderView]:
    engine = create_database_engine(url, for_reads=True)
    try:
        with Session(engine) as session:
            return read_orders(session, order_ids)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------- plumbing


def _read(topics: Sequence[str], start: str | None, stop: str | None) -> list[StoredRecord]:
    first = position_option(start, Edge.BEGINNING, "--from")
    last = position_option(stop, Edge.END, "--to")
    return asyncio.run(_read_range(topics, first, last))


async def _read_range(topics: Sequence[str], start: Position, stop: Position) -> list[StoredRecord]:
    records: list[StoredRecord] = []
    with progress_bar() as progress:
        task = progress.add_task(f"reading {', '.join(topics)}", total=None)
        async for record in read_range(
            KafkaSettings().kafka_bootstrap_servers,
            topics,
            start,
            stop,
            on_range=lambda total: progress.update(task, total=total),
        ):
            records.append(StoredRecord.of(record))
            progress.advance(task)
    return records


def _replay(
    replayable: Replayable,
    records: list[StoredRecord],
    into: str,
    dry_run: bool,
    emit: bool,
    batch: int,
) -> ReplayReport:
    schemas = KafkaSettings().schemas()
    with progress_bar() as progress:
        task = progress.add_task(f"replaying {replayable.definition.name}", total=len(records))
        return replay(
            replayable,
            replayable.arrange(records),
            into,
            schemas,
            dry_run=dry_run,
            emit=emit,
            batch_size=batch,
            on_batch=lambda n: progress.advance(task, n),
        )


@contextlib.contextmanager
def _reported_errors() -> Iterator[None]:
    """kafka_io's `reported_errors`; a database that fails is one line on stderr too."""
    with reported_errors():
        try:
            yield
        except SQLAlchemyError as error:
            typer.echo(f"pipeline: database: {str(error).splitlines()[0]}", err=True)
            raise typer.Exit(1) from None


def _print_report(report: ReplayReport, into: str) -> None:
    kept = "dry run: rolled back, nothing kept" if report.dry_run else f"into {into}"
    typer.echo(
        f"replayed {report.service} ({kept}): {report.records} records, {report.handled} "
        f"handled, {report.duplicates} already handled, {report.skipped} not for "
        f"{report.service}, {report.dead_lettered} failed (dead letters, not published), "
        f"{report.parked} parked behind them"
    )
    if report.changes:
        typer.echo("rows            inserted  updated  deleted")
        for table, change in sorted(report.changes.items()):
            typer.echo(f"  {table:<14}{change.inserted:>8}{change.updated:>9}{change.deleted:>9}")
    else:
        typer.echo("rows: no change")
    where = "written to the outbox" if report.emit else "not published"
    if report.emitted:
        typer.echo(f"messages the handlers emitted ({where}):")
        for (topic, event_type), n in sorted(report.emitted.items()):
            typer.echo(f"  {topic:<22}{event_type:<28}{n:>6}")
    else:
        typer.echo("messages the handlers emitted: none")


def _print_differences(found: list[str]) -> None:
    for line in found:
        typer.echo(line)
    typer.echo(
        f"{len(found)} differences from the live read model"
        if found
        else "the rebuilt orders equal the live ones"
    )

"""`pipeline dlq list|show|redrive|purge`: what the services dead-lettered, and what to do
about it.

A dead letter is named by where it sits, `<dlq topic>:<partition>:<offset>`
(`payments.events.dlq:0:3`), and is open until it is redriven or purged:

- `redrive` sends it back to its source topic (same key, value and original headers) for
  the consumer group that dead-lettered it alone (`dlq.redrive.group`): the other groups
  skip it, they handled it the first time. Once it goes through, the messages of its key
  that the group parked meanwhile follow it, in order.
- `purge` gives up on it: a release control record (no value; `dlq.release.group`,
  `dlq.release.id`) tells that group to drop it and to handle the parked messages now.

Both append a marker to the dead-letter topic (no value; `dlq.resolution` = redriven or
purged, `dlq.resolves` = the id), so the topic itself says what was done, whoever lists it.
`purge --all` deletes the topic's records instead (Kafka's DeleteRecords), markers included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from kit.avro_codec import SchemaStore
from kit.consumer import (
    DEAD_LETTER_SUFFIX,
    HEADER_ATTEMPTS,
    HEADER_CONSUMER_GROUP,
    HEADER_MESSAGE_ID,
    HEADER_REDRIVE_ATTEMPT,
    HEADER_REDRIVE_GROUP,
    HEADER_RELEASE_GROUP,
    HEADER_RELEASE_ID,
    RELEASE_EVENT_TYPE,
)
from kit.envelope import HEADER_EVENT_ID, HEADER_EVENT_TYPE
from pipeline_cli.kafka_io import (
    CLIENT_ID,
    KafkaSettings,
    RawRecord,
    TopicReader,
    epoch_ms,
    header_texts,
    json_safe,
    produce,
    reported_errors,
    safe_producer,
    text_of,
)

app = typer.Typer(
    help="List, inspect, redrive and purge dead letters (the `*.dlq` topics).",
    no_args_is_help=True,
)

HEADER_RESOLUTION = "dlq.resolution"
HEADER_RESOLVES = "dlq.resolves"
HEADER_RESOLVED_AT = "dlq.resolved_at"
OPEN = "open"
REDRIVEN = "redriven"
PURGED = "purged"

ERROR_WIDTH = 60  # of the error column in `list`; --json and `show` give it whole

BootstrapServers = Annotated[
    str,
    typer.Option(
        "--bootstrap-servers",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        show_envvar=True,
        help="The Kafka broker(s)",
    ),
]
TopicFilter = Annotated[
    str | None,
    typer.Option(
        "--topic",
        help="Only this dead-letter topic (payments.events.dlq, or its source payments.events)",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="JSON, for scripts")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")]
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


# ------------------------------------------------------------------ dead letters, as read


@dataclass(frozen=True)
class DeadLetter:
    """A record of a dead-letter topic and what has been done about it (its state)."""

    record: RawRecord
    state: str = OPEN

    @property
    def id(self) -> str:
        return f"{self.record.topic}:{self.record.partition}:{self.record.offset}"

    @property
    def headers(self) -> dict[str, str]:
        return {name: value or "" for name, value in header_texts(self.record.headers).items()}

    @property
    def key(self) -> str:
        return text_of(self.record.key) or ""

    @property
    def source_topic(self) -> str:
        return self.headers.get("dlq.source.topic") or self.record.topic.removesuffix(
            DEAD_LETTER_SUFFIX
        )

    @property
    def group(self) -> str:
        return self.headers.get(HEADER_CONSUMER_GROUP, "")

    @property
    def attempts(self) -> int:
        return _number(self.headers.get(HEADER_ATTEMPTS))

    @property
    def redrives(self) -> int:
        return _number(self.headers.get(HEADER_REDRIVE_ATTEMPT))

    @property
    def message_id(self) -> str:
        """As the consumer names the message: older dead letters lack the header, and their
        id is the event id, or where the message was."""
        headers = self.headers
        return (
            headers.get(HEADER_MESSAGE_ID)
            or headers.get(HEADER_EVENT_ID)
            or ":".join(
                headers.get(f"dlq.source.{part}", "?") for part in ("topic", "partition", "offset")
            )
        )

    def summary(self) -> dict[str, Any]:
        headers = self.headers
        return {
            "id": self.id,
            "state": self.state,
            "source_topic": self.source_topic,
            "key": self.key,
            "event_type": headers.get(HEADER_EVENT_TYPE, ""),
            "group": self.group,
            "error_type": headers.get("dlq.error.type", ""),
            "error_message": headers.get("dlq.error.message", ""),
            "attempts": self.attempts,
            "redrives": self.redrives,
            "failed_at": headers.get("dlq.failed_at", ""),
            "message_id": self.message_id,
        }

    def refusal(self) -> str | None:
        """Why it can be neither redriven nor purged, or None."""
        if self.state != OPEN:
            return f"{self.id} was already {self.state}"
        if not self.group:
            return f"{self.id} names no consumer group ({HEADER_CONSUMER_GROUP}): not ours"
        return None


def fold(records: Iterable[RawRecord]) -> list[DeadLetter]:
    """The dead letters among a DLQ topic's records, each in the state its markers give it
    (the latest marker wins), in topic and offset order; the markers themselves are not."""
    letters: list[RawRecord] = []
    resolutions: dict[str, tuple[tuple[int, int], str]] = {}
    for record in records:
        headers = header_texts(record.headers)
        resolves = headers.get(HEADER_RESOLVES)
        if resolves is None:
            letters.append(record)
            continue
        when = (record.timestamp_ms, record.offset)
        if resolves not in resolutions or resolutions[resolves][0] < when:
            resolutions[resolves] = (when, headers.get(HEADER_RESOLUTION) or REDRIVEN)
    letters.sort(key=lambda r: (r.topic, r.partition, r.offset))
    folded = [DeadLetter(record) for record in letters]
    return [
        DeadLetter(d.record, resolutions[d.id][1]) if d.id in resolutions else d for d in folded
    ]


def parse_id(text: str) -> tuple[str, int, int]:
    """`payments.events.dlq:0:3` → ("payments.events.dlq", 0, 3)."""
    topic, _, rest = text.strip().partition(":")
    partition, _, offset = rest.partition(":")
    if not (topic.endswith(DEAD_LETTER_SUFFIX) and partition.isdigit() and offset.isdigit()):
        raise ValueError(f"{text!r} is not a dead letter id (<topic>.dlq:<partition>:<offset>)")
    return topic, int(partition), int(offset)


def dlq_topic(name: str) -> str:
    """A dead-letter topic, named as itself or by its source topic."""
    return name if name.endswith(DEAD_LETTER_SUFFIX) else name + DEAD_LETTER_SUFFIX


# ---------------------------------------------------------------------- what gets written


def redrive_of(dead: DeadLetter, now: datetime) -> RawRecord:
    """The dead letter's message back on its source topic, for its own group alone.

    It keeps the original key, value and headers, and says which message it is, how many
    redrives it has been through and how many attempts it had, so that a failure dead-letters
    it again counting on."""
    original = tuple((name, value) for name, value in dead.record.headers if not _is_dlq(name))
    return RawRecord(
        topic=dead.source_topic,
        partition=_number(dead.headers.get("dlq.source.partition")),
        offset=-1,
        timestamp_ms=epoch_ms(now),
        key=dead.record.key,
        value=dead.record.value,
        headers=original
        + _encoded(
            {
                HEADER_REDRIVE_GROUP: dead.group,
                HEADER_REDRIVE_ATTEMPT: str(dead.redrives + 1),
                HEADER_MESSAGE_ID: dead.message_id,
                HEADER_ATTEMPTS: str(dead.attempts),
            }
        ),
    )


def release_of(dead: DeadLetter, now: datetime) -> RawRecord | None:
    """The control record that tells the dead letter's group to drop it and release its key;
    None for a message without a key, behind which nothing waits."""
    if not dead.key:
        return None
    return RawRecord(
        topic=dead.source_topic,
        partition=_number(dead.headers.get("dlq.source.partition")),
        offset=-1,
        timestamp_ms=epoch_ms(now),
        key=dead.record.key,
        value=None,
        headers=_encoded(
            {
                HEADER_EVENT_TYPE: RELEASE_EVENT_TYPE,
                HEADER_RELEASE_GROUP: dead.group,
                HEADER_RELEASE_ID: dead.message_id,
            }
        ),
    )


def marker_of(dead: DeadLetter, resolution: str, now: datetime) -> RawRecord:
    """What the dead-letter topic keeps to say the dead letter was redriven or purged."""
    return RawRecord(
        topic=dead.record.topic,
        partition=dead.record.partition,
        offset=-1,
        timestamp_ms=epoch_ms(now),
        key=dead.record.key,
        value=None,
        headers=_encoded(
            {
                HEADER_RESOLUTION: resolution,
                HEADER_RESOLVES: dead.id,
                HEADER_RESOLVED_AT: now.isoformat(),
            }
        ),
    )


def _encoded(headers: Mapping[str, str]) -> tuple[tuple[str, bytes | None], ...]:
    return tuple((name, value.encode()) for name, value in headers.items())


def _is_dlq(header: str) -> bool:
    return header.startswith("dlq.")


def _number(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


# ------------------------------------------------------------------------------ Kafka I/O


@dataclass(frozen=True)
class Snapshot:
    """The dead letters of some DLQ topics, read up to `ends` (where each partition ended)."""

    dead_letters: list[DeadLetter]
    ends: dict[TopicPartition, int]

    def find(self, dead_letter_id: str) -> DeadLetter | None:
        return next((d for d in self.dead_letters if d.id == dead_letter_id), None)

    def open(self) -> list[DeadLetter]:
        return [d for d in self.dead_letters if d.state == OPEN]


async def read_dead_letters(bootstrap_servers: str, topics: Sequence[str] = ()) -> Snapshot:
    """Every record of `topics` (default: every `*.dlq` topic), from their start to the end
    they had when the read began, without joining a consumer group."""
    async with TopicReader(bootstrap_servers) as reader:
        names = list(topics) or sorted(
            t for t in await reader.consumer.topics() if t.endswith(DEAD_LETTER_SUFFIX)
        )
        if not names:
            return Snapshot([], {})
        partitions = await reader.partitions(names)
        bounds = await reader.bounds(partitions)
        records = [RawRecord.of(r) async for r in reader.records(bounds.beginning, bounds.end)]
    return Snapshot(fold(records), dict(bounds.end))


async def send(bootstrap_servers: str, *waves: Sequence[RawRecord]) -> None:
    """Each wave is acknowledged before the next goes: a marker is never written for a
    redrive or a release that the broker did not take."""
    producer = safe_producer(bootstrap_servers)
    await producer.start()
    try:
        for wave in waves:
            await produce(producer, wave)
    finally:
        await producer.stop()


async def delete_up_to(bootstrap_servers: str, ends: Mapping[TopicPartition, int]) -> None:
    """Deletes every record before `ends` (Kafka's DeleteRecords): the start offset moves up."""
    wanted = {tp: RecordsToDelete(end) for tp, end in ends.items() if end > 0}
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=CLIENT_ID)
    await admin.start()
    try:
        await admin.delete_records(wanted)
    finally:
        await admin.close()


# ------------------------------------------------------------------------------- commands


@app.command("list")
def list_(
    topic: TopicFilter = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also those already redriven or purged")
    ] = False,
    as_json: AsJson = False,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP,
) -> None:
    """List the open dead letters of every `*.dlq` topic (or of --topic).

    One line each: its id (for show, redrive, purge), the source topic,
    the message's key (the order id) and event type, the consumer group
    that gave up on it, why, after how many attempts, when, and its
    state. Exits 1 when there is none.

    Examples:

        pipeline dlq list

        pipeline dlq list --topic payments.events --all --json | jq '.[].error_message'
    """
    topics = [dlq_topic(topic)] if topic else []
    with reported_errors():
        snapshot = asyncio.run(read_dead_letters(bootstrap_servers, topics))
    shown = snapshot.dead_letters if show_all else snapshot.open()
    summaries = [dead.summary() for dead in shown]
    if as_json:
        typer.echo(json.dumps(summaries, ensure_ascii=False))
    elif summaries:
        _print_table(summaries)
    if not shown:
        which = "dead letters" if show_all else "open dead letters"
        typer.echo(f"no {which} in {', '.join(topics) or 'any *.dlq topic'}", err=True)
        raise typer.Exit(1)


@app.command()
def show(
    dead_letter_id: Annotated[
        str,
        typer.Argument(metavar="ID", help="As `list` shows it: <topic>.dlq:<partition>:<offset>"),
    ],
    as_json: AsJson = False,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP,
) -> None:
    """Show one dead letter: why it failed, its headers, its payload.

    The payload is decoded with the schemas in schemas/ (any version);
    when it does not decode, the reason is shown instead.

    Example:

        pipeline dlq show payments.events.dlq:0:3
    """
    topic = _checked_id(dead_letter_id)[0]
    schemas = KafkaSettings().schemas()
    with reported_errors():
        snapshot = asyncio.run(read_dead_letters(bootstrap_servers, [topic]))
    dead = _found(snapshot, dead_letter_id)
    shown = {**dead.summary(), "headers": dead.headers, **decoded(dead, schemas)}
    if as_json:
        typer.echo(json.dumps(shown, ensure_ascii=False))
        return
    typer.echo(f"{dead.id}  {dead.state}")
    for label, value in (
        ("source", f"{shown['source_topic']} (key {shown['key'] or '-'})"),
        ("group", shown["group"] or "-"),
        ("error", f"{shown['error_type']}: {shown['error_message']}"),
        ("attempts", f"{shown['attempts']} ({shown['redrives']} redrives before)"),
        ("failed at", shown["failed_at"] or "-"),
        ("message id", shown["message_id"]),
    ):
        typer.echo(f"{label:<11}{value}")
    typer.echo("headers:")
    for name, value in dead.headers.items():
        typer.echo(f"  {name}: {value}")
    if "payload" in shown:
        typer.echo(f"payload ({shown['payload_type']}):")
        typer.echo(json.dumps(shown["payload"], indent=2, ensure_ascii=False))
    else:
        typer.echo(f"payload: does not decode ({shown['decode_error']})")


def decoded(dead: DeadLetter, schemas: SchemaStore) -> dict[str, Any]:
    """The payload as JSON and its event type, or `decode_error` saying why there is none."""
    if not dead.record.value:
        return {"decode_error": "no value"}
    try:
        event_type, payload = schemas.decode(dead.record.value)
    except Exception as error:  # the bytes that made it a dead letter may be anything
        return {"decode_error": f"{type(error).__name__}: {error}"}
    return {"payload_type": event_type, "payload": json_safe(payload)}


@app.command()
def redrive(
    dead_letter_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The dead letter, as `list` shows it")
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Every open dead letter")] = False,
    topic: TopicFilter = None,
    yes: Yes = False,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP,
) -> None:
    """Send dead letters back to their source topic, for their group.

    Fix the cause first (deploy the fix, correct the data). The group that
    gave up on the message handles it again as if it came now; if it fails
    again, it is dead-lettered again (its attempts count on). Other groups
    skip it. Once it goes through, the messages of the same key that the
    group parked meanwhile are handled right after it, in order.

    Examples:

        pipeline dlq redrive payments.events.dlq:0:3

        pipeline dlq redrive --all --topic payments.events --yes
    """
    _check_selection(dead_letter_id, every, topic)
    chosen = _choose(dead_letter_id, topic, bootstrap_servers)
    _confirm(yes, f"Redrive {_count(chosen)} to their source topics?")
    now = datetime.now(UTC)
    with reported_errors():
        asyncio.run(
            send(
                bootstrap_servers,
                [redrive_of(dead, now) for dead in chosen],
                [marker_of(dead, REDRIVEN, now) for dead in chosen],
            )
        )
    for dead in chosen:
        typer.echo(f"redriven {dead.id} -> {dead.source_topic} for {dead.group}")


@app.command()
def purge(
    dead_letter_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="The dead letter, as `list` shows it")
    ] = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every open dead letter, then delete every record of the topic(s) up to now",
        ),
    ] = False,
    topic: TopicFilter = None,
    yes: Yes = False,
    bootstrap_servers: BootstrapServers = DEFAULT_BOOTSTRAP,
) -> None:
    """Give up on dead letters: their message is never handled.

    The group that dead-lettered one drops it and handles, in order, the
    messages of the same key it parked meanwhile. Make good by hand what
    the message should have done. A purged record stays in the topic,
    marked purged (Kafka deletes only up to an offset); --all also deletes
    every record of the topic(s) up to their current end, so the topic is
    empty and its depth gauge (pipeline_dlq_messages) drops to 0.

    Examples:

        pipeline dlq purge payments.events.dlq:0:3

        pipeline dlq purge --all --topic orders.events.dlq --yes
    """
    _check_selection(dead_letter_id, every, topic)
    if every:
        _purge_all(topic, yes, bootstrap_servers)
        return
    chosen = _choose(dead_letter_id, topic, bootstrap_servers)
    _confirm(yes, f"Purge {_count(chosen)}? Their messages will never be handled.")
    now = datetime.now(UTC)
    releases = [r for dead in chosen if (r := release_of(dead, now)) is not None]
    with reported_errors():
        asyncio.run(
            send(bootstrap_servers, releases, [marker_of(dead, PURGED, now) for dead in chosen])
        )
    for dead in chosen:
        typer.echo(
            f"purged {dead.id}" + (f"; {dead.group} releases key {dead.key}" if dead.key else "")
        )


def _purge_all(topic: str | None, yes: bool, bootstrap_servers: str) -> None:
    topics = [dlq_topic(topic)] if topic else []
    with reported_errors():
        snapshot = asyncio.run(read_dead_letters(bootstrap_servers, topics))
    held = {tp: end for tp, end in snapshot.ends.items() if end > 0}
    chosen = [dead for dead in snapshot.open() if dead.refusal() is None]
    if not snapshot.dead_letters:
        typer.echo(f"nothing to purge in {', '.join(topics) or 'any *.dlq topic'}", err=True)
        raise typer.Exit(1)
    names = sorted({tp.topic for tp in held})
    _confirm(
        yes,
        f"Purge {_count(chosen)} and delete every record of {', '.join(names)} up to now?"
        " Their messages will never be handled.",
    )
    now = datetime.now(UTC)
    releases = [r for dead in chosen if (r := release_of(dead, now)) is not None]
    with reported_errors():
        asyncio.run(send(bootstrap_servers, releases))
        asyncio.run(delete_up_to(bootstrap_servers, held))
    typer.echo(f"purged {_count(chosen)}; {', '.join(names)} emptied up to now")


def _check_selection(dead_letter_id: str | None, every: bool, topic: str | None) -> None:
    if (dead_letter_id is None) == (not every):
        raise typer.BadParameter("give one of them, not both", param_hint="ID or --all")
    if dead_letter_id is not None and topic is not None:
        raise typer.BadParameter("goes with --all (an ID names its topic)", param_hint="--topic")
    if dead_letter_id is not None:
        _checked_id(dead_letter_id)


def _choose(
    dead_letter_id: str | None, topic: str | None, bootstrap_servers: str
) -> list[DeadLetter]:
    """The dead letters a redrive or purge acts on: one by id, or every open one."""
    if dead_letter_id is not None:
        topics = [_checked_id(dead_letter_id)[0]]
    else:
        topics = [dlq_topic(topic)] if topic else []
    with reported_errors():
        snapshot = asyncio.run(read_dead_letters(bootstrap_servers, topics))
    if dead_letter_id is not None:
        dead = _found(snapshot, dead_letter_id)
        if (refusal := dead.refusal()) is not None:
            typer.echo(f"pipeline: {refusal}", err=True)
            raise typer.Exit(1)
        return [dead]
    chosen = [dead for dead in snapshot.open() if dead.refusal() is None]
    for foreign in (dead for dead in snapshot.open() if dead.refusal() is not None):
        typer.echo(f"skipping {foreign.refusal()}", err=True)
    if not chosen:
        typer.echo(f"no open dead letters in {', '.join(topics) or 'any *.dlq topic'}", err=True)
        raise typer.Exit(1)
    return chosen


def _checked_id(text: str) -> tuple[str, int, int]:
    try:
        return parse_id(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="ID") from None


def _found(snapshot: Snapshot, dead_letter_id: str) -> DeadLetter:
    topic, partition, offset = _checked_id(dead_letter_id)
    dead = snapshot.find(f"{topic}:{partition}:{offset}")
    if dead is None:
        typer.echo(f"pipeline: no dead letter {dead_letter_id}", err=True)
        raise typer.Exit(1)
    return dead


def _confirm(yes: bool, question: str) -> None:
    if not yes and not typer.confirm(question):
        typer.echo("nothing done", err=True)
        raise typer.Exit(1)


def _count(dead_letters: Sequence[DeadLetter]) -> str:
    return f"{len(dead_letters)} dead letter" + ("" if len(dead_letters) == 1 else "s")


def _print_table(summaries: Sequence[Mapping[str, Any]]) -> None:
    columns = (
        ("ID", "id"),
        ("SOURCE", "source_topic"),
        ("KEY", "key"),
        ("EVENT TYPE", "event_type"),
        ("GROUP", "group"),
        ("ERROR", "error"),
        ("ATTEMPTS", "attempts"),
        ("FAILED AT", "failed_at"),
        ("STATE", "state"),
    )
    rows = [
        [
            _clipped(f"{s['error_type']}: {s['error_message']}")
            if field == "error"
            else str(s[field] or "-")
            for _, field in columns
        ]
        for s in summaries
    ]
    header = [title for title, _ in columns]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _clipped(text: str) -> str:
    text = " ".join(text.split())  # a traceback's lines on one line
    return text if len(text) <= ERROR_WIDTH else text[: ERROR_WIDTH - 1] + "…"

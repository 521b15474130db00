"""`pipeline events tail|dump|load`: read a topic as JSON, save a range of it, produce it again.

The dump files hold each record exactly as Kafka had it, so `load` can reproduce it:

- `jsonl`: one JSON object per line, `DUMP_SCHEMA`'s fields with every bytes value (key,
  value, header values) in base64 (null stays null), headers as `[name, value]` pairs in
  their order.
- `avro`: an Avro object container file (deflate) whose records follow `DUMP_SCHEMA`; its
  schema travels in the file, so any Avro tool reads it.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import fastavro
import typer
from fastavro.write import Writer

from pipeline_cli.kafka_io import (
    POSITION_HELP,
    Edge,
    KafkaSettings,
    Position,
    RawRecord,
    decode_record,
    is_about_order,
    position_option,
    produce,
    progress_bar,
    read_range,
    reported_errors,
    require_topics,
    safe_producer,
)

app = typer.Typer(
    help="Read a topic as JSON lines, dump a range of it to a file, load a dump back.",
    no_args_is_help=True,
)

DUMP_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "DumpedRecord",
    "namespace": "pipeline.cli",
    "doc": "One Kafka record as `pipeline events dump` saved it: enough to produce it again.",
    "fields": [
        {"name": "topic", "type": "string", "doc": "The topic it was read from"},
        {"name": "partition", "type": "int", "doc": "Its partition there"},
        {"name": "offset", "type": "long", "doc": "Its offset in that partition"},
        {
            "name": "timestamp_ms",
            "type": "long",
            "doc": "The record's timestamp (ms since the epoch); `load` sends it along",
        },
        {"name": "key", "type": ["null", "bytes"], "doc": "The key (the order id), raw"},
        {"name": "value", "type": ["null", "bytes"], "doc": "The value (Avro single-object)"},
        {
            "name": "headers",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Header",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "value", "type": ["null", "bytes"]},
                    ],
                },
            },
            "doc": "Every header, in order (names may repeat)",
        },
    ],
}
PARSED_DUMP_SCHEMA = fastavro.parse_schema(DUMP_SCHEMA)
AVRO_CONTAINER_MAGIC = b"Obj\x01"


class DumpFormat(enum.StrEnum):
    JSONL = "jsonl"
    AVRO = "avro"


# ----------------------------------------------------------------------------- file format


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text, validate=True)


def to_json_line(record: RawRecord) -> str:
    return json.dumps(
        {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp_ms": record.timestamp_ms,
            "key": _b64(record.key),
            "value": _b64(record.value),
            "headers": [[name, _b64(value)] for name, value in record.headers],
        }
    )


def from_json_line(line: str) -> RawRecord:
    data = json.loads(line)
    return RawRecord(
        topic=data["topic"],
        partition=data["partition"],
        offset=data["offset"],
        timestamp_ms=data["timestamp_ms"],
        key=_unb64(data["key"]),
        value=_unb64(data["value"]),
        headers=tuple((name, _unb64(value)) for name, value in data["headers"]),
    )


def to_avro_datum(record: RawRecord) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": record.key,
        "value": record.value,
        "headers": [{"name": name, "value": value} for name, value in record.headers],
    }


def from_avro_datum(datum: dict[str, Any]) -> RawRecord:
    return RawRecord(
        topic=datum["topic"],
        partition=datum["partition"],
        offset=datum["offset"],
        timestamp_ms=datum["timestamp_ms"],
        key=datum["key"],
        value=datum["value"],
        headers=tuple((header["name"], header["value"]) for header in datum["headers"]),
    )


class DumpWriter:
    """Writes records to a dump file of either format, one at a time."""

    def __init__(self, file: IO[bytes], file_format: DumpFormat) -> None:
        self._file = file
        self._avro = (
            Writer(file, PARSED_DUMP_SCHEMA, codec="deflate")
            if file_format is DumpFormat.AVRO
            else None
        )

    def write(self, record: RawRecord) -> None:
        if self._avro is not None:
            self._avro.write(to_avro_datum(record))
        else:
            self._file.write(to_json_line(record).encode() + b"\n")

    def close(self) -> None:
        if self._avro is not None:
            self._avro.flush()


def read_dump(path: Path) -> Iterator[RawRecord]:
    """The records of a dump file, whichever format (an Avro container starts `Obj\\x01`)."""
    with path.open("rb") as file:
        if file.read(len(AVRO_CONTAINER_MAGIC)) == AVRO_CONTAINER_MAGIC:
            file.seek(0)
            for datum in fastavro.reader(file):
                if not isinstance(datum, dict):
                    raise ValueError(f"{path}: an Avro file, but not of dumped records")
                yield from_avro_datum(datum)
            return
        file.seek(0)
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield from_json_line(line.decode())
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a dumped record ({error!r})") from None


def format_of(path: Path, chosen: DumpFormat | None) -> DumpFormat:
    if chosen is not None:
        return chosen
    return DumpFormat.AVRO if path.suffix.lower() == ".avro" else DumpFormat.JSONL


# ---------------------------------------------------------------------------------- tail


@app.command()
def tail(
    topic: Annotated[str, typer.Argument(help="e.g. orders.events, payments.events.dlq")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new records until Ctrl-C")
    ] = False,
    event_type: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="Only this event type (repeat for several)"),
    ] = None,
    order: Annotated[
        str | None,
        typer.Option(help="Only records of this order (its key or correlation_id header)"),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help=f"Where to start: {POSITION_HELP}. Default: beginning; end with --follow",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=1, help="Stop after this many records")
    ] = None,
) -> None:
    """Print TOPIC's records as JSON lines (pipe them to jq).

    One line per record: partition, offset, timestamp, key, headers, event
    type and the decoded payload, or `decode_error` when the bytes are not
    an event. Without --follow it stops at the end the topic had when it
    started. It joins no consumer group: the services never notice it.

    Examples:

        pipeline events tail orders.events --order 0b6d5e0c-... | jq .payload

        pipeline events tail payments.events -f --type PaymentFailed

        pipeline events tail inventory.events --from 15m --limit 20
    """
    starts_at = position_option(start, Edge.END if follow else Edge.BEGINNING, "--from")
    wanted = set(event_type or ())
    with reported_errors():
        asyncio.run(_tail(topic, starts_at, follow, wanted, order, limit))


async def _tail(
    topic: str,
    start: Position,
    follow: bool,
    wanted: set[str],
    order: str | None,
    limit: int | None,
) -> None:
    settings = KafkaSettings()
    schemas = settings.schemas()
    printed = 0
    stop = None if follow else Edge.END
    records = read_range(settings.kafka_bootstrap_servers, [topic], start, stop)
    async for record in records:
        if order is not None and not is_about_order(record, order):
            continue
        decoded = decode_record(record, schemas)
        if wanted and decoded["event_type"] not in wanted:
            continue
        typer.echo(json.dumps(decoded, ensure_ascii=False))
        printed += 1
        if limit is not None and printed >= limit:
            return


# ---------------------------------------------------------------------------------- dump


@app.command()
def dump(
    topic: Annotated[str, typer.Argument(help="The topic to save a range of")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The file to write (replaced)")],
    start: Annotated[
        str | None,
        typer.Option("--from", help=f"First record: {POSITION_HELP}. Default: beginning"),
    ] = None,
    stop: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Where to stop, not included: same forms as --from. Default: the end the "
            "topic had when the dump started",
        ),
    ] = None,
    file_format: Annotated[
        DumpFormat | None,
        typer.Option(
            "--format", help="jsonl (base64 bytes) or avro (container file). Default: by suffix"
        ),
    ] = None,
) -> None:
    """Save a range of TOPIC to a file, for `events load` to produce again.

    Each record is saved exactly as Kafka holds it: key, value bytes, headers
    and timestamp. jsonl has the bytes in base64; avro is an Avro container
    file of a fixed envelope schema (topic, partition, offset, timestamp_ms,
    key, value, headers) that any Avro tool reads.

    Examples:

        pipeline events dump orders.events --from 2h --out orders.jsonl

        pipeline events dump payments.events --out payments.avro \\
            --from 2025-03-01T00:00Z --to 2025-03-02T00:00Z
    """
    range_start = position_option(start, Edge.BEGINNING, "--from")
    range_stop = position_option(stop, Edge.END, "--to")
    chosen = format_of(out, file_format)
    with reported_errors():
        count = asyncio.run(_dump(topic, range_start, range_stop, out, chosen))
    typer.echo(f"dumped {count} records of {topic} to {out} ({chosen})", err=True)


async def _dump(
    topic: str, start: Position, stop: Position, out: Path, file_format: DumpFormat
) -> int:
    settings = KafkaSettings()
    count = 0
    with progress_bar() as progress, out.open("wb") as file:
        task = progress.add_task(f"dumping {topic}", total=None)
        writer = DumpWriter(file, file_format)
        records = read_range(
            settings.kafka_bootstrap_servers,
            [topic],
            start,
            stop,
            on_range=lambda total: progress.update(task, total=total),
        )
        async for record in records:
            writer.write(RawRecord.of(record))
            count += 1
            progress.advance(task)
        writer.close()
    return count


# ---------------------------------------------------------------------------------- load


@app.command()
def load(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A file `events dump` wrote")
    ],
    topic: Annotated[
        str | None, typer.Option(help="Produce everything to this topic instead of the original")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Read the file, say what would be sent, send nothing"),
    ] = False,
) -> None:
    """Produce the records of a dump file again, exactly as they were.

    Same key, headers, value and original timestamp, to their own topic or
    to --topic (which must exist); an idempotent producer with acks=all.
    Either dump format: it is recognised by its content. The pipeline's own
    topics are stamped by the broker on append (LogAppendTime): there the
    records get the time of the load instead; a topic created with the
    default CreateTime keeps the original timestamps.

    Loading into a live topic makes the services handle those events: each
    service's inbox drops exact duplicates by event id and acts on anything
    else.

    Examples:

        pipeline events load orders.jsonl --dry-run

        pipeline events load payments.avro --topic scratch.payments
    """
    with reported_errors():
        destinations = _destinations(file, topic)
        total = sum(destinations.values())
        where = ", ".join(f"{count} to {name}" for name, count in sorted(destinations.items()))
        if dry_run:
            typer.echo(f"dry run: would load {total} records from {file}: {where or 'none'}")
            return
        asyncio.run(_load(file, topic, destinations))
    typer.echo(f"loaded {total} records from {file}: {where or 'none'}")


def _destinations(file: Path, topic: str | None) -> dict[str, int]:
    """How many records of the file go to each topic."""
    counts: dict[str, int] = {}
    for record in read_dump(file):
        destination = topic or record.topic
        counts[destination] = counts.get(destination, 0) + 1
    return counts


async def _load(file: Path, topic: str | None, destinations: Iterable[str]) -> None:
    settings = KafkaSettings()
    await require_topics(settings.kafka_bootstrap_servers, destinations)
    producer = safe_producer(settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await produce(producer, read_dump(file), topic)
    finally:
        await producer.stop()

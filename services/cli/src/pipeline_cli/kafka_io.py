"""Reading the pipeline's topics from the outside, for every `pipeline` command that does.

What they share: the settings (the services' own environment variables), where a read
starts and stops (`--from`/`--to`), reading a range of offsets of several topics at once,
a record as a JSON-able dict that is never an exception however broken its bytes, and a
producer as safe as the services' own.

The reader joins no consumer group and commits nothing: the services never notice it, and
any number of engineers can read the same topic at the same time.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.progress import Progress

from kit.avro_codec import SchemaStore
from kit.envelope import HEADER_CORRELATION_ID, HEADER_EVENT_TYPE
from kit.outbox_relay import create_producer
from kit.settings import REPO_ROOT

CLIENT_ID = "pipeline-cli"
POLL_TIMEOUT_MS = 500
MAX_POLL_RECORDS = 5_000
# How many records `produce` keeps in flight before waiting for the broker's acks.
PRODUCE_WINDOW = 1_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class KafkaSettings(BaseSettings):
    """The variables the services read, so a shell set up for a service works for the CLI."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    schemas_dir: Path = REPO_ROOT / "schemas"

    def schemas(self) -> SchemaStore:
        return SchemaStore.load(self.schemas_dir)


# ---------------------------------------------------------------- where a read starts/stops


class Edge(enum.Enum):
    BEGINNING = "beginning"
    END = "end"


# An edge of each partition (as it was when the read began), the same offset in every
# partition, or the first record at or after a moment.
Position = Edge | int | datetime

POSITION_HELP = (
    "`beginning`, `end`, an offset (`1200`, in every partition), an ISO-8601 time "
    "(`2025-03-01T12:00:00Z`; local time without a zone) or an age (`90s`, `15m`, `2h`, "
    "`1d`, `1w`)"
)
_AGE = re.compile(r"^(?P<count>\d+)(?P<unit>[smhdw])$")
_AGE_UNITS = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}


def parse_position(text: str, now: datetime | None = None) -> Position:
    """`--from`/`--to`: see POSITION_HELP. An age counts back from `now`."""
    cleaned = text.strip()
    lowered = cleaned.lower()
    for edge in Edge:
        if lowered == edge.value:
            return edge
    if cleaned.isdigit():
        return int(cleaned)
    if age := _AGE.match(lowered):
        return (now or datetime.now(UTC)) - int(age["count"]) * _AGE_UNITS[age["unit"]]
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not a position; use {POSITION_HELP}") from None
    # A time without a zone is what the engineer's own clock said: local time.
    return moment if moment.tzinfo is not None else moment.astimezone()


def position_option(text: str | None, default: Position, option: str) -> Position:
    """A `--from`/`--to` option's value, `default` when not given; a bad one is a usage error."""
    if text is None:
        return default
    try:
        return parse_position(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


@dataclass(frozen=True)
class Bounds:
    """Each partition's first offset and the offset its next record will get, when read."""

    beginning: Mapping[TopicPartition, int]
    end: Mapping[TopicPartition, int]


def offsets_at(
    position: Position,
    bounds: Bounds,
    found_by_time: Mapping[TopicPartition, int | None] | None = None,
) -> dict[TopicPartition, int]:
    """The offset `position` means in each partition, always within the partition's bounds.

    `found_by_time` (for a time position) is the broker's answer to "first offset at or after
    that time": None where no record is that recent yet, which means the end.
    """
    if position is Edge.BEGINNING:
        return dict(bounds.beginning)
    if position is Edge.END:
        return dict(bounds.end)
    if isinstance(position, datetime):
        if found_by_time is None:
            raise ValueError("a time position needs the broker's offsets for that time")
        return {
            tp: end if (found := found_by_time.get(tp)) is None else _within(found, bounds, tp)
            for tp, end in bounds.end.items()
        }
    return {tp: _within(position, bounds, tp) for tp in bounds.end}


def _within(offset: int, bounds: Bounds, tp: TopicPartition) -> int:
    return min(max(offset, bounds.beginning[tp]), bounds.end[tp])


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_time(timestamp_ms: int) -> str:
    """A Kafka timestamp as ISO-8601 UTC with milliseconds (integer arithmetic: exact)."""
    moment = EPOCH + timedelta(milliseconds=timestamp_ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------- reading


class UnknownTopicError(LookupError):
    def __str__(self) -> str:
        return f"no such topic: {', '.join(self.args[0])}"


class KafkaRecord(Protocol):
    """What the CLI reads of a record (aiokafka's ConsumerRecord has it all)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


class TopicReader:
    """Reads partitions it assigns to itself; `async with TopicReader(bootstrap) as reader:`."""

    def __init__(self, bootstrap_servers: str) -> None:
        self._bootstrap = bootstrap_servers
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> TopicReader:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=CLIENT_ID)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=CLIENT_ID,
            group_id=None,
            enable_auto_commit=False,
            # Only what the services can see: never records of an aborted transaction.
            isolation_level="read_committed",
            # Every partition is sought explicitly; this only applies when retention deleted
            # the records a read was about to start at.
            auto_offset_reset="earliest",
        )
        try:
            await self._admin.start()
            await self._consumer.start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._admin is not None:
            await self._admin.close()

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("use TopicReader in `async with`")
        return self._consumer

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """Every partition of `topics`; UnknownTopicError names those that do not exist."""
        assert self._admin is not None, "use TopicReader in `async with`"
        described = await self._admin.describe_topics(list(topics))
        missing = [t["topic"] for t in described if not t["partitions"]]
        if missing:
            raise UnknownTopicError(sorted(missing))
        return sorted(
            TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
        )

    async def bounds(self, partitions: Sequence[TopicPartition]) -> Bounds:
        beginning = await self.consumer.beginning_offsets(list(partitions))
        end = await self.consumer.end_offsets(list(partitions))
        return Bounds(beginning, end)

    async def offsets(self, position: Position, bounds: Bounds) -> dict[TopicPartition, int]:
        found: dict[TopicPartition, int | None] | None = None
        if isinstance(position, datetime):
            at = epoch_ms(position)
            answer = await self.consumer.offsets_for_times(dict.fromkeys(bounds.end, at))
            found = {tp: None if hit is None else hit.offset for tp, hit in answer.items()}
        return offsets_at(position, bounds, found)

    async def records(
        self,
        starts: Mapping[TopicPartition, int],
        stops: Mapping[TopicPartition, int] | None = None,
    ) -> AsyncIterator[Any]:
        """The records from `starts` up to, not including, `stops`; without `stops`, on and
        on as they are written (the caller stops it). One consumer fetches every partition
        at once. Each partition's order is kept; each fetch is yielded in timestamp order."""
        consumer = self.consumer
        unread = {tp for tp, start in starts.items() if stops is None or start < stops[tp]}
        if not unread:
            return
        consumer.assign(sorted(unread))
        for tp in unread:
            consumer.seek(tp, starts[tp])
        while unread:
            fetched = await consumer.getmany(
                timeout_ms=POLL_TIMEOUT_MS, max_records=MAX_POLL_RECORDS
            )
            batch = [
                record
                for tp, records in fetched.items()
                for record in records
                if stops is None or record.offset < stops[tp]
            ]
            if stops is not None:
                for tp in list(unread):
                    if await consumer.position(tp) >= stops[tp]:
                        unread.discard(tp)
                        consumer.pause(tp)  # fetch nothing more of it than was asked for
            batch.sort(key=lambda record: record.timestamp)
            for record in batch:
                yield record


async def read_range(
    bootstrap_servers: str,
    topics: Sequence[str],
    start: Position,
    stop: Position | None,
    on_range: Callable[[int], None] | None = None,
) -> AsyncIterator[Any]:
    """The records of `topics` from `start` to `stop` (None: follow); `on_range(total)` is
    told how many records the range holds (before any are read) when it has an end."""
    async with TopicReader(bootstrap_servers) as reader:
        partitions = await reader.partitions(topics)
        bounds = await reader.bounds(partitions)
        starts = await reader.offsets(start, bounds)
        stops = None if stop is None else await reader.offsets(stop, bounds)
        if stops is not None and on_range is not None:
            on_range(sum(max(stops[tp] - starts[tp], 0) for tp in partitions))
        async for record in reader.records(starts, stops):
            yield record


# ------------------------------------------------------------------------------ decoding


def header_texts(headers: Sequence[tuple[str, bytes | None]]) -> dict[str, str | None]:
    """Header values as text; bytes that are not UTF-8 show as U+FFFD instead of failing."""
    return {
        name: None if value is None else value.decode("utf-8", "replace")
        for name, value in headers or ()
    }


def text_of(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def is_about_order(record: KafkaRecord, order_id: str) -> bool:
    """Keys are order ids; the correlation header names the order too (say, for a DLQ copy
    re-keyed by hand)."""
    if record.key == order_id.encode():
        return True
    return any(
        name == HEADER_CORRELATION_ID and value == order_id.encode()
        for name, value in record.headers or ()
    )


def json_safe(value: Any) -> Any:
    """What Avro decoding yields, as JSON: bytes in base64, times in ISO-8601, decimals and
    UUIDs as strings."""
    if isinstance(value, Mapping):
        return {str(name): json_safe(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def decode_record(record: KafkaRecord, schemas: SchemaStore) -> dict[str, Any]:
    """The record as a JSON-able dict: where it is, its key, headers and event type, and
    either its Avro payload or a `decode_error` saying why there is none."""
    headers = header_texts(record.headers)
    decoded: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": iso_time(record.timestamp),
        "key": text_of(record.key),
        "headers": headers,
        "event_type": headers.get(HEADER_EVENT_TYPE),
    }
    if record.value is None:
        decoded["decode_error"] = "no value (a tombstone)"
        return decoded
    try:
        event_type, payload = schemas.decode(record.value)
    except Exception as error:  # any bytes at all may arrive; a read must go on past them
        decoded["decode_error"] = f"{type(error).__name__}: {error}"
        return decoded
    decoded["event_type"] = event_type
    decoded["payload"] = json_safe(payload)
    return decoded


# -------------------------------------------------------------------- raw records, writing


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record exactly as Kafka holds it: what `dump` saves and `load` produces again."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    @classmethod
    def of(cls, record: KafkaRecord) -> RawRecord:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp_ms=record.timestamp,
            key=record.key,
            value=record.value,
            headers=tuple((name, value) for name, value in record.headers or ()),
        )


def safe_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    """The services' own producer settings: acks=all and idempotent."""
    return create_producer(bootstrap_servers, linger_ms=5, client_id=CLIENT_ID)


async def produce(
    producer: AIOKafkaProducer, records: Iterable[RawRecord], topic: str | None = None
) -> int:
    """Sends `records` to their own topic (or `topic`) with their key, value, headers and
    timestamp; partitioned by key like everything the services send. Returns how many."""
    sent = 0
    in_flight = []
    for record in records:
        in_flight.append(
            await producer.send(
                topic or record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                timestamp_ms=record.timestamp_ms,
            )
        )
        if len(in_flight) >= PRODUCE_WINDOW:
            sent += await _acknowledged(in_flight)
    return sent + await _acknowledged(in_flight)


async def _acknowledged(in_flight: list[Any]) -> int:
    for delivery in in_flight:
        await delivery  # raises if the broker refused the record
    count = len(in_flight)
    in_flight.clear()
    return count


async def require_topics(bootstrap_servers: str, topics: Iterable[str]) -> None:
    """Raises UnknownTopicError unless every topic exists (the broker creates none itself)."""
    async with TopicReader(bootstrap_servers) as reader:
        await reader.partitions(sorted(set(topics)))


# -------------------------------------------------------------------------- command plumbing


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """A command's failure as one line on stderr and exit code 1, not a traceback; Ctrl-C
    ends a command quietly; a closed pipe (`| head`) ends it quietly too."""
    # aiokafka logs every failed connection attempt; the one line below says it better.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        yield
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except BrokenPipeError:
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None
    except (KafkaError, UnknownTopicError, OSError, ValueError) as error:
        typer.echo(f"pipeline: {str(error) or type(error).__name__}", err=True)
        raise typer.Exit(1) from None


def progress_bar() -> Progress:
    """A progress bar on stderr, only when a person watches it (stderr is a terminal)."""
    console = Console(stderr=True)
    return Progress(console=console, disable=not console.is_terminal, transient=True)

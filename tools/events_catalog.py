"""Write docs/EVENTS.md, the catalog of every topic and message, from what actually runs.

Nothing in the catalog is typed by hand, so it cannot drift from the system:

- messages, every version, their fields, defaults and docs: `schemas/<producer>/<Type>.v<N>.avsc`;
- topics, partitions, cleanup and retention, and why: `deploy/kafka/topics.toml`, the file
  `kafkactl.py create-topics` applies;
- who publishes what where and which types each service handles: the services' own
  `bootstrap.definition(...)` (routes from `contracts.PUBLISHES`, the subscription's topics
  and handlers), built with the default settings;
- the KPI stream processor (`orders.kpis`): what it reads, and the changelog topics faust
  creates for its tables.

Inconsistencies between those sources (a published type without a schema, a schema doc
naming another topic than the route) stop the generator with a `CatalogError`.

    python tools/events_catalog.py            # rewrite docs/EVENTS.md (make events-doc)
    python tools/events_catalog.py --check    # exit 1 with a diff if it is stale
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form
from prometheus_client import CollectorRegistry

import fulfillment.bootstrap
import inventory.bootstrap
import notifications.bootstrap
import orders.bootstrap
import payments.bootstrap
from fulfillment.settings import FulfillmentSettings
from inventory.settings import InventorySettings
from kit import envelope
from kit.avro_codec import SCHEMA_FILE, SchemaStore
from kit.service import ServiceDefinition
from kit.settings import REPO_ROOT
from kit.testing.servers import kafkactl
from orders.kpis.app import COUNTED_TYPES, OrderKpis
from orders.kpis.settings import KpisSettings
from orders.settings import OrdersSettings

DEFAULT_OUTPUT = REPO_ROOT / "docs" / "EVENTS.md"
DEFAULT_SCHEMAS = REPO_ROOT / "schemas"
DEFAULT_TOPICS = REPO_ROOT / "deploy" / "kafka" / "topics.toml"
# Every schema's record doc ends by naming its topic and key (the convention of schemas/).
TOPIC_AND_KEY = re.compile(r"Topic (?P<topic>[\w.-]+), key (?P<key>\w+)\.")
DLQ_SUFFIX = ".dlq"
COMMANDS_SUFFIX = ".commands"
MS_PER = (("day", 86_400_000), ("hour", 3_600_000), ("minute", 60_000), ("second", 1000))


class CatalogError(Exception):
    """The sources disagree; the message says where."""


@dataclass(frozen=True)
class FieldDoc:
    path: str  # dotted through nested records: "lines[].sku", "shipping_address.city"
    type: str
    default: str  # JSON, or "" when the field has none
    doc: str


@dataclass(frozen=True)
class SchemaFile:
    event_type: str
    version: int
    path: Path
    doc: str
    fingerprint: str  # hex, as on the wire after C3 01
    fields: tuple[FieldDoc, ...]


@dataclass(frozen=True)
class Reader:
    """A consumer group: a service or the stream processor, with what it handles."""

    name: str
    group: str
    topics: tuple[str, ...]
    handlers: Mapping[str, str]  # event type -> dotted name of the function
    dead_letters: bool  # the services park what they cannot handle in <topic>.dlq


@dataclass(frozen=True)
class Message:
    event_type: str
    topic: str
    key: str
    publisher: str  # "" while no service writes it yet
    versions: tuple[SchemaFile, ...]  # oldest first
    readers: tuple[tuple[str, str], ...]  # (reader, handler)

    @property
    def kind(self) -> str:
        return "command" if self.topic.endswith(COMMANDS_SUFFIX) else "event"

    @property
    def producer(self) -> str:
        return self.publisher or "nobody yet"

    @property
    def current(self) -> SchemaFile:
        return self.versions[-1]


@dataclass(frozen=True)
class StateTopic:
    name: str
    owner: str
    partitions: int
    cleanup: str
    retention: str
    holds: str


@dataclass(frozen=True)
class Catalog:
    topics: Sequence[Any]  # kafkactl.TopicSpec, in topics.toml order
    messages: Sequence[Message]
    readers: Sequence[Reader]
    dlq_watchers: Sequence[str]
    state_topics: Sequence[StateTopic]


# ------------------------------------------------------------------------------ sources


def service_definitions() -> list[ServiceDefinition]:
    """The five services as they are wired, with default settings (the environment ignored,
    so the catalog is the same on every machine)."""
    return [
        orders.bootstrap.definition(OrdersSettings.model_construct()),
        inventory.bootstrap.definition(InventorySettings.model_construct()),
        payments.bootstrap.definition(),
        fulfillment.bootstrap.definition(FulfillmentSettings.model_construct()),
        notifications.bootstrap.definition(),
    ]


def kpi_stream(schemas_dir: Path) -> tuple[Reader, list[StateTopic]]:
    """The KPI process as a reader, and the changelog topics faust makes for its tables."""
    settings = KpisSettings.model_construct()
    kpis = OrderKpis(settings, SchemaStore.load(schemas_dir), registry=CollectorRegistry())
    tally = _dotted(OrderKpis.tally)
    reader = Reader(
        name="kpis",
        group=settings.kpis_app_id,
        topics=(settings.kpis_source_topic,),
        handlers={event_type: tally for event_type in sorted(COUNTED_TYPES)},
        dead_letters=False,  # it logs and leaves out what it cannot read
    )
    state = []
    for _, table in sorted(kpis.app.tables.items()):
        changelog = table.changelog_topic
        policies = [
            p for p, on in (("compact", changelog.compacting), ("delete", changelog.deleting)) if on
        ]
        retention = (
            _duration(int(changelog.retention * 1000))
            if changelog.retention
            else "no time limit: compaction keeps the newest value of every key"
        )
        state.append(
            StateTopic(
                name=changelog.get_topic_name(),
                owner="kpis",
                partitions=changelog.partitions or settings.kpis_topic_partitions,
                cleanup=",".join(policies),
                retention=retention,
                holds=f"table `{table.name}`: {table.help}",
            )
        )
    return reader, state


def service_readers(definitions: Iterable[ServiceDefinition]) -> list[Reader]:
    return [
        Reader(
            name=d.name,
            group=d.name,
            topics=tuple(d.subscription.topics),
            handlers={t: _dotted(h) for t, h in d.subscription.handlers.items()},
            dead_letters=True,
        )
        for d in definitions
        if d.subscription is not None
    ]


def load_schema_files(schemas_dir: Path) -> dict[str, list[SchemaFile]]:
    """Every version of every type, oldest first."""
    versions: dict[str, list[SchemaFile]] = {}
    for path in sorted(schemas_dir.glob("*/*.avsc")):
        match = SCHEMA_FILE.match(path.name)
        if match is None:
            raise CatalogError(f"{path}: schema files are named <Type>.v<N>.avsc")
        raw = json.loads(path.read_text())
        # Computed as kit.avro_codec does it, so the catalog shows the bytes on the wire.
        canonical = to_parsing_canonical_form(parse_schema(raw, named_schemas={}))
        versions.setdefault(match["type"], []).append(
            SchemaFile(
                event_type=match["type"],
                version=int(match["version"]),
                path=path,
                doc=str(raw.get("doc", "")),
                fingerprint=fingerprint(canonical, "CRC-64-AVRO"),
                fields=tuple(_fields(raw)),
            )
        )
    for files in versions.values():
        files.sort(key=lambda f: f.version)
    return versions


def collect(
    schemas_dir: Path,
    topics_path: Path,
    definitions: Sequence[ServiceDefinition],
    extra_readers: Sequence[Reader] = (),
    state_topics: Sequence[StateTopic] = (),
) -> Catalog:
    topics = kafkactl().load_topics(topics_path)
    topic_names = [t.name for t in topics]
    schemas = load_schema_files(schemas_dir)
    readers = [*service_readers(definitions), *extra_readers]
    published: dict[str, tuple[str, str]] = {}  # type -> (publisher, topic)
    for definition in definitions:
        for event_type, topic in definition.routes.items():
            if topic not in topic_names:
                raise CatalogError(
                    f"{definition.name} publishes {event_type} to {topic}, "
                    f"which is not in {topics_path.name}"
                )
            if event_type in published:
                raise CatalogError(
                    f"{event_type} is published by both {published[event_type][0]} "
                    f"and {definition.name}"
                )
            published[event_type] = (definition.name, topic)
    missing = sorted(set(published) - set(schemas))
    if missing:
        raise CatalogError(f"{missing} are published but have no schema under {schemas_dir}")
    # A schema may ship before any service writes it (docs/ARCHITECTURE.md, "Schema
    # evolution"): it is listed under the topic its doc names, with no producer yet.
    for event_type in sorted(set(schemas) - set(published)):
        current = schemas[event_type][-1]
        topic = _topic_and_key(current)[0]
        if topic not in topic_names:
            raise CatalogError(f"{current.path}: topic {topic} is not in {topics_path.name}")
        published[event_type] = ("", topic)

    messages = []
    for topic in topic_names:
        for event_type, (publisher, route) in published.items():
            if route != topic:
                continue
            versions = schemas[event_type]
            current = versions[-1]
            if publisher and current.path.parent.name != publisher:
                raise CatalogError(f"{current.path}: published by {publisher}, not its directory")
            named_topic, key = _topic_and_key(current)
            if named_topic != topic:
                raise CatalogError(
                    f"{current.path}: the doc names topic {named_topic}, "
                    f"but {publisher} publishes {event_type} to {topic}"
                )
            handled_by = tuple(
                (r.name, r.handlers[event_type])
                for r in readers
                if topic in r.topics and event_type in r.handlers
            )
            messages.append(Message(event_type, topic, key, publisher, tuple(versions), handled_by))
    watchers = [d.name for d in definitions if d.watches_dead_letters]
    return Catalog(topics, messages, readers, watchers, state_topics)


def _topic_and_key(schema: SchemaFile) -> tuple[str, str]:
    named = TOPIC_AND_KEY.search(schema.doc)
    if named is None:
        raise CatalogError(f"{schema.path}: the record doc must end 'Topic <t>, key <k>.'")
    return named["topic"], named["key"]


def build(schemas_dir: Path = DEFAULT_SCHEMAS, topics_path: Path = DEFAULT_TOPICS) -> Catalog:
    kpis, state = kpi_stream(schemas_dir)
    return collect(schemas_dir, topics_path, service_definitions(), [kpis], state)


# ---------------------------------------------------------------------------- rendering


def render(catalog: Catalog) -> str:
    out: list[str] = []
    add = out.append
    add("# Event catalog\n")
    add(
        "Generated by `tools/events_catalog.py` from `schemas/`, `deploy/kafka/topics.toml`, "
        "the services' wiring (`<service>/bootstrap.py`, `<service>/contracts.py`) and the KPI "
        "stream processor (`orders/kpis/`). Do not edit it: change those and run "
        "`make events-doc`; `make schemas-check` fails while this file is stale.\n"
    )
    headers = ", ".join(
        f"`{getattr(envelope, name)}`"
        for name in sorted(vars(envelope))
        if name.startswith("HEADER_")
    )
    add(
        "Every message: the **key** is the id of what it is about (named per message below), "
        "so everything about one order stays in one partition, in order. The **headers** "
        f"carry the envelope ({headers}; `kit/envelope.py`). The **value** is Avro "
        "single-object encoding: `C3 01`, the 8-byte CRC-64-AVRO fingerprint of the writer's "
        "schema (listed per version below), the datum. A consumer reads every version it has "
        "a schema file for, with the newest one; how to add a version without breaking "
        "anyone: [Schema evolution](ARCHITECTURE.md#schema-evolution).\n"
    )
    _render_topics(catalog, add)
    _render_state_topics(catalog, add)
    _render_messages(catalog, add)
    return "\n".join(out).rstrip() + "\n"


def _render_topics(catalog: Catalog, add: Callable[[str], None]) -> None:
    add("## Topics\n")
    add(
        "As `kafkactl.py create-topics` (`make kafka-topics`) creates them from "
        "`deploy/kafka/topics.toml`. It never alters a topic that exists, it only warns "
        "that it differs from the file; apply a changed config to a running cluster with "
        "Kafka's `kafka-configs`, here through the cached jars:\n"
    )
    add(
        "```bash\n"
        ".venv/bin/python deploy/kafka/kafkactl.py run-class kafka.admin.ConfigCommand \\\n"
        "  --bootstrap-server 127.0.0.1:9092 --alter --entity-type topics \\\n"
        "  --entity-name orders.events.dlq --add-config retention.ms=-1\n"
        "```\n"
    )
    by_topic = _messages_by_topic(catalog)
    rows = []
    for spec in catalog.topics:
        rows.append(
            [
                f"[`{spec.name}`](#{_anchor(spec.name)})",
                str(spec.partitions),
                spec.config.get("cleanup.policy", "delete"),
                _retention(spec),
                _keys(by_topic.get(spec.name, [])) or "as the source topic",
                ", ".join(_producers(catalog, spec)),
                ", ".join(_consumers(catalog, spec)) or "nobody",
            ]
        )
    add(
        _table(
            ["topic", "partitions", "cleanup", "retention", "key", "producers", "consumers"], rows
        )
    )
    for spec in catalog.topics:
        add(f"### `{spec.name}`\n")
        add(f"{spec.doc}\n")
        config = ", ".join(f"`{k}={v}`" for k, v in sorted(spec.config.items()))
        add(f"- Partitions: {spec.partitions}, replication factor {spec.replication_factor}")
        add(f"- Config: {config}")
        if spec.is_dlq:
            source = spec.name.removesuffix(DLQ_SUFFIX)
            add(
                f"- Holds: any message of [`{source}`](#{_anchor(source)}) a consumer gave up on, "
                "value, key and headers unchanged plus `dlq.*` headers saying why, where it "
                "came from and which group failed (`kit/consumer.py`)"
            )
            add(f"- Written by: {', '.join(_producers(catalog, spec))} (through their outbox)")
            add(f"- Read by: {', '.join(_consumers(catalog, spec))}\n")
            continue
        messages = by_topic.get(spec.name, [])
        listed = ", ".join(f"[{m.event_type}](#{_anchor(m.event_type)})" for m in messages)
        add(f"- Messages: {listed or 'none yet'}")
        add(f"- Produced by: {', '.join(_producers(catalog, spec)) or 'nobody yet'}")
        readers = [r for r in catalog.readers if spec.name in r.topics]
        if not readers:
            add("- Consumed by: nobody yet\n")
            continue
        add("- Consumed by (consumer group: the types it handles; it skips the others unread):")
        on_topic = {m.event_type for m in messages}
        for reader in readers:
            handled = sorted(t for t in reader.handlers if t in on_topic)
            add(f"  - `{reader.group}` ({reader.name}): {', '.join(handled) or 'none yet'}")
        add("")


def _render_state_topics(catalog: Catalog, add: Callable[[str], None]) -> None:
    if not catalog.state_topics:
        return
    add("## State topics\n")
    add(
        "Made by the KPI stream processor (`python -m orders.kpis`, faust) the first time it "
        "starts, not by `kafkactl.py`: each table of its state has a changelog topic from "
        "which a restarted process restores the table. faust makes them **compacted** (only "
        "the newest value of a key is kept), and a windowed table's also deleting, after "
        "the window's retention. They hold nothing that cannot be rebuilt from "
        "`orders.events`: deleting them (with the process stopped) resets the KPIs.\n"
    )
    rows = [
        [f"`{s.name}`", s.owner, str(s.partitions), s.cleanup, s.retention, s.holds]
        for s in catalog.state_topics
    ]
    add(_table(["topic", "owner", "partitions", "cleanup", "retention", "holds"], rows))


def _render_messages(catalog: Catalog, add: Callable[[str], None]) -> None:
    add("## Messages\n")
    rows = [
        [
            f"[{m.event_type}](#{_anchor(m.event_type)})",
            m.kind,
            f"`{m.topic}`",
            f"`{m.key}`",
            f"v{m.current.version}",
            m.producer,
            ", ".join(sorted({reader for reader, _ in m.readers})) or "nobody yet",
        ]
        for m in catalog.messages
    ]
    add(_table(["message", "kind", "topic", "key", "current", "producer", "consumers"], rows))
    for message in catalog.messages:
        current = message.current
        add(f"### {message.event_type}\n")
        add(
            f"{message.kind.capitalize()} on `{message.topic}`, key `{message.key}`, produced by "
            f"{message.producer}; current version v{current.version}.\n"
        )
        add(f"{current.doc}\n")
        if message.readers:
            add(_table(["consumer", "handler"], [[r, f"`{h}`"] for r, h in message.readers]))
        else:
            add("No service handles it yet: it is kept for audits and future consumers.\n")
        add(
            _table(
                ["version", "schema", "fingerprint", "changes"],
                [
                    [
                        f"v{v.version}",
                        f"`{v.path.relative_to(v.path.parents[2]).as_posix()}`",
                        f"`{v.fingerprint}`",
                        _changes(message.versions[i - 1], v) if i else "first version",
                    ]
                    for i, v in reversed(list(enumerate(message.versions)))
                ],
            )
        )
        add(f"Fields of v{current.version}:\n")
        add(_fields_table(current.fields))
        for older in reversed(message.versions[:-1]):
            add(f"<details><summary>Fields of v{older.version}</summary>\n")
            add(_fields_table(older.fields))
            add("</details>\n")


def _fields_table(fields: Sequence[FieldDoc]) -> str:
    return _table(
        ["field", "type", "default", "doc"],
        [[f"`{f.path}`", f.type, f"`{f.default}`" if f.default else "", f.doc] for f in fields],
    )


def _changes(old: SchemaFile, new: SchemaFile) -> str:
    before = {f.path: f for f in old.fields}
    after = {f.path: f for f in new.fields}
    notes = []
    for path, field in after.items():
        was = before.get(path)
        default = f", default `{field.default}`" if field.default else ", no default"
        if was is None:
            notes.append(f"added `{path}` ({field.type}{default})")
        elif was.type != field.type:
            notes.append(f"`{path}`: {was.type} → {field.type}")
        elif was.default != field.default:
            notes.append(
                f"`{path}`: default `{was.default or 'none'}` → `{field.default or 'none'}`"
            )
        elif was.doc != field.doc:
            notes.append(f"`{path}`: doc reworded")
    notes.extend(f"removed `{path}`" for path in before if path not in after)
    if old.doc != new.doc:
        notes.append("record doc reworded")
    return "; ".join(notes) or "nothing but the schema's text"


# -------------------------------------------------------------------------------- helpers


def _fields(record: Mapping[str, Any], prefix: str = "") -> Iterable[FieldDoc]:
    for field in record.get("fields", []):
        path = prefix + field["name"]
        default = json.dumps(field["default"]) if "default" in field else ""
        yield FieldDoc(path, _type(field["type"]), default, " ".join(field.get("doc", "").split()))
        yield from _nested(field["type"], path)


def _nested(schema: Any, path: str) -> Iterable[FieldDoc]:
    """The fields of records inside a field's type, under the field's path."""
    if isinstance(schema, list):
        for branch in schema:
            yield from _nested(branch, path)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            yield from _fields(schema, path + ".")
        elif kind == "array":
            yield from _nested(schema["items"], path + "[]")
        elif kind == "map":
            yield from _nested(schema["values"], path + "{}")


def _type(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return " | ".join(_type(branch) for branch in schema)
    kind = schema.get("type")
    if "logicalType" in schema:
        return f"{schema['logicalType']} ({kind})"
    if kind in ("record", "enum", "fixed"):
        name = str(schema["name"]).rpartition(".")[2]
        if kind == "enum":
            return f"enum {name} ({', '.join(schema['symbols'])})"
        return f"{kind} {name}"
    if kind == "array":
        return f"array of {_type(schema['items'])}"
    if kind == "map":
        return f"map of {_type(schema['values'])}"
    return _type(kind)


def _dotted(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _messages_by_topic(catalog: Catalog) -> dict[str, list[Message]]:
    by_topic: dict[str, list[Message]] = {}
    for message in catalog.messages:
        by_topic.setdefault(message.topic, []).append(message)
    return by_topic


def _producers(catalog: Catalog, spec: Any) -> list[str]:
    if spec.is_dlq:
        source = spec.name.removesuffix(DLQ_SUFFIX)
        return [r.name for r in catalog.readers if r.dead_letters and source in r.topics]
    return sorted({m.publisher for m in catalog.messages if m.topic == spec.name} - {""})


def _consumers(catalog: Catalog, spec: Any) -> list[str]:
    if spec.is_dlq:
        watchers = [f"{w} (depth gauge only)" for w in catalog.dlq_watchers]
        return ["operators (inspect, fix, re-drive)", *watchers]
    return [r.name for r in catalog.readers if spec.name in r.topics]


def _keys(messages: Sequence[Message]) -> str:
    keys: dict[str, list[str]] = {}
    for message in messages:
        keys.setdefault(message.key, []).append(message.event_type)
    if len(keys) <= 1:
        return "".join(f"`{key}`" for key in keys)
    # The most common key alone; the others name their messages.
    main = max(keys, key=lambda k: len(keys[k]))
    others = [f"`{k}` ({', '.join(types)})" for k, types in keys.items() if k != main]
    return f"`{main}`; " + "; ".join(others)


def _retention(spec: Any) -> str:
    if "compact" in spec.config.get("cleanup.policy", "delete").split(","):
        return "compacted"
    retention = int(spec.config.get("retention.ms", "604800000"))  # Kafka's default: 7 days
    if retention >= 0:
        return _duration(retention)
    return "until deleted by people" if spec.is_dlq else "forever"


def _duration(ms: int) -> str:
    for unit, size in MS_PER:
        if ms % size == 0:
            count = ms // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{ms} ms"


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(text: str) -> str:
        return text.replace("\n", " ").replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------ CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--schemas-dir", type=Path, default=DEFAULT_SCHEMAS)
    parser.add_argument("--topics", type=Path, default=DEFAULT_TOPICS)
    args = parser.parse_args(argv)
    output: Path = args.output
    try:
        text = render(build(args.schemas_dir, args.topics))
    except CatalogError as error:
        print(f"events_catalog: {error}", file=sys.stderr)
        return 1
    if not args.check:
        output.write_text(text)
        print(f"wrote {_display(output)}")
        return 0
    current = output.read_text() if output.exists() else ""
    if current == text:
        print(f"OK: {_display(output)} is up to date")
        return 0
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        text.splitlines(keepends=True),
        f"{output} (as it is)",
        f"{output} (as generated)",
        n=1,
    )
    sys.stdout.writelines(list(diff)[:80])
    print(
        f"\nSTALE: {_display(output)} is not what tools/events_catalog.py generates: "
        "run `make events-doc`"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())

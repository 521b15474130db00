"""docs/EVENTS.md: generated from schemas, topics.toml and the services' wiring, never stale."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.avro_codec import SchemaStore
from kit.settings import REPO_ROOT
from kit.testing.servers import kafkactl
from tools.events_catalog import (
    DEFAULT_OUTPUT,
    DEFAULT_SCHEMAS,
    DEFAULT_TOPICS,
    Catalog,
    CatalogError,
    build,
    collect,
    kpi_stream,
    render,
    service_definitions,
)

TOOL = REPO_ROOT / "tools" / "events_catalog.py"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return build()


@pytest.fixture(scope="module")
def text(catalog: Catalog) -> str:
    return render(catalog)


def section(text: str, heading: str) -> str:
    """The body of a `###` heading, up to the next heading of any level."""
    start = text.index(f"\n### {heading}\n")
    ends = [i for i in (text.find("\n## ", start + 1), text.find("\n### ", start + 1)) if i > 0]
    return text[start : min(ends, default=len(text))]


def with_schemas(tmp_path: Path) -> Path:
    schemas = tmp_path / "schemas"
    shutil.copytree(DEFAULT_SCHEMAS, schemas)
    return schemas


def collect_from(schemas: Path) -> Catalog:
    kpis, state = kpi_stream(schemas)
    return collect(schemas, DEFAULT_TOPICS, service_definitions(), [kpis], state)


def test_the_committed_catalog_is_what_the_generator_writes(text: str) -> None:
    # `make events-doc` regenerates it; `make schemas-check` runs the same comparison.
    assert DEFAULT_OUTPUT.read_text() == text


def test_order_placed_names_every_consumer_with_its_handler_and_both_versions(text: str) -> None:
    body = section(text, "OrderPlaced")

    for consumer, handler in [
        ("inventory", "inventory.handlers.stock.reserve_stock_on_order_placed"),
        ("payments", "payments.handlers.capture.CaptureHandlers.on_order_placed"),
        ("fulfillment", "fulfillment.handlers.shipping.ShippingHandlers.on_order_placed"),
        ("notifications", "notifications.handlers.notify.NotificationHandlers.on_order_placed"),
        ("kpis", "orders.kpis.app.OrderKpis.tally"),
    ]:
        assert f"| {consumer} | `{handler}` |" in body
    assert "current version v2" in body
    assert 'added `sales_channel` (string, default `"web"`)' in body
    assert '| `sales_channel` | string | `"web"` |' in body
    assert "<summary>Fields of v1</summary>" in body
    assert "| `shipping_address.line2` | null \\| string | `null` |" in body


def test_every_fingerprint_is_the_one_the_codec_writes(catalog: Catalog) -> None:
    store = SchemaStore.load(DEFAULT_SCHEMAS)

    for message in catalog.messages:
        assert message.current.fingerprint == store.latest(message.event_type).fingerprint.hex()


def test_every_topic_of_topics_toml_is_listed_with_its_retention(text: str) -> None:
    specs = kafkactl().load_topics(DEFAULT_TOPICS)
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| [`")}

    assert len(rows) == len(specs)
    for spec in specs:
        row = rows[f"| [`{spec.name}`](#{spec.name.replace('.', '')})"]
        retention = spec.config["retention.ms"]
        if spec.is_dlq:
            assert "| until deleted by people |" in row
        elif retention == "-1":
            assert "| forever |" in row
        else:
            assert f"| {int(retention) // 86_400_000} days |" in row
        assert f"\n{spec.doc}\n" in section(text, f"`{spec.name}`")


def test_the_kpi_changelogs_are_listed_as_compacted_state_topics(catalog: Catalog) -> None:
    cleanup = {s.name: s.cleanup for s in catalog.state_topics}

    assert cleanup == {
        "order-pipeline-kpis-open-order-values-changelog": "compact",
        "order-pipeline-kpis-per-minute-changelog": "compact,delete",
    }


def test_a_dead_letter_topic_is_written_by_every_service_reading_its_source(text: str) -> None:
    body = section(text, "`orders.commands.dlq`")

    assert "- Written by: inventory, payments, fulfillment (through their outbox)" in body


def test_a_new_version_shows_what_changed(tmp_path: Path) -> None:
    schemas = with_schemas(tmp_path)
    v1 = json.loads((schemas / "orders" / "OrderCompleted.v1.avsc").read_text())
    v2 = {**v1, "fields": [*v1["fields"]]}
    v2["fields"][0] = {**v1["fields"][0], "doc": "The order's id."}
    v2["fields"].append({"name": "note", "type": ["null", "string"], "default": None, "doc": "N."})
    (schemas / "orders" / "OrderCompleted.v2.avsc").write_text(json.dumps(v2))

    body = section(render(collect_from(schemas)), "OrderCompleted")

    assert "current version v2" in body
    assert "`order_id`: doc reworded; added `note` (null \\| string, default `null`)" in body


def test_a_schema_whose_doc_names_another_topic_is_refused(tmp_path: Path) -> None:
    schemas = with_schemas(tmp_path)
    path = schemas / "payments" / "PaymentFailed.v1.avsc"
    schema = json.loads(path.read_text())
    schema["doc"] = schema["doc"].replace("Topic payments.events", "Topic orders.events")
    path.write_text(json.dumps(schema))

    with pytest.raises(CatalogError, match=r"names topic orders\.events, but payments publishes"):
        collect_from(schemas)


def test_a_schema_shipped_before_its_producer_is_listed_with_nobody_producing_it(
    tmp_path: Path,
) -> None:
    schemas = with_schemas(tmp_path)
    schema = json.loads((schemas / "orders" / "OrderCompleted.v1.avsc").read_text())
    schema["name"] = "OrderArchived"
    (schemas / "orders" / "OrderArchived.v1.avsc").write_text(json.dumps(schema))

    body = section(render(collect_from(schemas)), "OrderArchived")

    assert "Event on `orders.events`, key `order_id`, produced by nobody yet" in body
    assert "No service handles it yet" in body


def test_a_published_type_without_a_schema_is_refused(tmp_path: Path) -> None:
    schemas = with_schemas(tmp_path)
    (schemas / "payments" / "PaymentFailed.v1.avsc").unlink()

    with pytest.raises(CatalogError, match=r"\['PaymentFailed'\] are published but have no schema"):
        collect_from(schemas)


def test_check_exits_1_with_a_diff_and_the_fix_when_the_catalog_is_stale(tmp_path: Path) -> None:
    stale = tmp_path / "EVENTS.md"
    stale.write_text(DEFAULT_OUTPUT.read_text().replace("14 days", "7 days"))

    run = subprocess.run(
        [sys.executable, str(TOOL), "--check", "--output", str(stale)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 1, run.stdout + run.stderr
    assert "-| [`orders.commands`](#orderscommands) | 6 | delete | 7 days |" in run.stdout
    assert "+| [`orders.commands`](#orderscommands) | 6 | delete | 14 days |" in run.stdout
    assert "run `make events-doc`" in run.stdout


def test_without_check_it_writes_the_catalog(tmp_path: Path) -> None:
    output = tmp_path / "EVENTS.md"

    run = subprocess.run(
        [sys.executable, str(TOOL), "--output", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert output.read_text() == DEFAULT_OUTPUT.read_text()

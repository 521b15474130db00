import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.schemas_check import Direction, Problem, ProblemKind, check_schemas

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / "schemas"
TOOL = REPO_ROOT / "tools" / "schemas_check.py"

EXPECTED_TYPES = {
    "orders": [
        "OrderPlaced",
        "OrderCompleted",
        "OrderCancelled",
        "ReturnRequested",
        "OrderReturned",
        "ReleaseStock",
        "RefundPayment",
        "CancelShipment",
        "RestockItems",
        "IssueReturnLabel",
        "OrderCancellationRequested",
        "OrderDeadlinePassed",
    ],
    "inventory": [
        "CatalogItemUpdated",
        "StockReserved",
        "StockReservationFailed",
        "StockReleased",
        "StockRestocked",
        "LowStockDetected",
    ],
    "payments": ["PaymentCaptured", "PaymentFailed", "PaymentRefunded"],
    "fulfillment": [
        "ShipmentCreated",
        "ShipmentDispatched",
        "ShipmentDelivered",
        "ShipmentCancelled",
        "ReturnLabelIssued",
        "ReturnReceived",
    ],
    "notifications": ["NotificationSent"],
}

Schema = dict[str, Any]


def shipped(producer: str, name: str) -> Schema:
    schema: Schema = json.loads((SHIPPED / producer / f"{name}.v1.avsc").read_text())
    return schema


def write(root: Path, relative: str, schema: Schema | str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema, indent=2))
    return path


def field(schema: Schema, name: str) -> Schema:
    found: Schema = next(f for f in schema["fields"] if f["name"] == name)
    return found


def evolve(base: Schema, change: Callable[[Schema], None]) -> Schema:
    new = copy.deepcopy(base)
    change(new)
    return new


def two_versions(tmp_path: Path, change: Callable[[Schema], None]) -> list[Problem]:
    base = shipped("orders", "OrderPlaced")
    write(tmp_path, "orders/OrderPlaced.v1.avsc", base)
    write(tmp_path, "orders/OrderPlaced.v2.avsc", evolve(base, change))
    return check_schemas(tmp_path)


def of_kind(problems: list[Problem], kind: ProblemKind) -> list[Problem]:
    return [p for p in problems if p.kind is kind]


def test_every_shipped_schema_is_valid_and_documented() -> None:
    problems = check_schemas(SHIPPED)

    assert problems == [], "\n".join(map(str, problems))


# Versions after the first, each with the change it brought.
LATER_VERSIONS = {"orders/OrderPlaced.v2.avsc"}  # + sales_channel


def test_every_specified_type_ships_a_v1_schema_and_only_the_listed_later_versions() -> None:
    expected = {
        f"{producer}/{name}.v1.avsc" for producer, names in EXPECTED_TYPES.items() for name in names
    } | LATER_VERSIONS

    found = {p.relative_to(SHIPPED).as_posix() for p in SHIPPED.rglob("*.avsc")}

    assert found == expected


def test_shipped_timestamps_are_timestamp_millis_and_optionals_default_to_null() -> None:
    fields: list[Schema] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            for f in node.get("fields", []):
                fields.append(f)
                collect(f["type"])
            collect(node.get("items"))

    for path in SHIPPED.rglob("*.avsc"):
        collect(json.loads(path.read_text()))
    timestamps = [f for f in fields if f["name"].endswith("_at")]
    optionals = [f for f in fields if isinstance(f["type"], list)]

    assert len(timestamps) == 16  # OrderPlaced's placed_at twice: in v1 and in v2
    assert all(
        f["type"] == {"type": "long", "logicalType": "timestamp-millis"} for f in timestamps
    ), timestamps
    assert {f["name"] for f in optionals} == {"line2", "region", "shipment_id", "after_event_id"}
    assert all(
        f["type"][0] == "null" and "default" in f and f["default"] is None for f in optionals
    )


def test_adding_a_field_with_a_default_is_compatible(tmp_path: Path) -> None:
    problems = two_versions(
        tmp_path,
        lambda s: s["fields"].append(
            {"name": "gift_note", "type": ["null", "string"], "default": None, "doc": "Gift note."}
        ),
    )

    assert problems == []


def test_adding_a_field_without_a_default_is_rejected_as_not_backward_compatible(
    tmp_path: Path,
) -> None:
    problems = two_versions(
        tmp_path,
        lambda s: s["fields"].append({"name": "gift_note", "type": "string", "doc": "Gift note."}),
    )

    # A v2 reader has no value for gift_note in v1 data; a v1 reader just skips it.
    assert [p.direction for p in problems] == [Direction.BACKWARD]
    assert problems[0].kind is ProblemKind.INCOMPATIBLE
    assert "reader_field_missing_default_value" in problems[0].message
    assert "gift_note" in problems[0].message


def test_removing_a_field_without_default_is_rejected_as_not_forward_compatible(
    tmp_path: Path,
) -> None:
    problems = two_versions(tmp_path, lambda s: s["fields"].remove(field(s, "customer_name")))

    # A v1 reader still needs customer_name, which v2 data no longer carries.
    assert [p.direction for p in problems] == [Direction.FORWARD]
    assert "reader_field_missing_default_value" in problems[0].message
    assert "customer_name" in problems[0].message


def test_removing_a_nested_field_that_has_a_default_is_compatible(tmp_path: Path) -> None:
    def drop_line2(s: Schema) -> None:
        address = field(s, "shipping_address")["type"]
        address["fields"].remove(field(address, "line2"))

    assert two_versions(tmp_path, drop_line2) == []


def test_changing_a_field_type_is_rejected_in_both_directions(tmp_path: Path) -> None:
    problems = two_versions(tmp_path, lambda s: field(s, "customer_id").update(type="int"))

    assert {p.direction for p in problems} == {Direction.BACKWARD, Direction.FORWARD}
    assert all(p.kind is ProblemKind.INCOMPATIBLE for p in problems)
    for p in problems:
        assert "type_mismatch" in p.message
        assert "(customer_id)" in p.message


def test_changing_a_nested_field_type_names_the_nested_field(tmp_path: Path) -> None:
    def retype_quantity(s: Schema) -> None:
        field(field(s, "lines")["type"]["items"], "quantity")["type"] = "string"

    problems = two_versions(tmp_path, retype_quantity)

    assert len(problems) == 2
    assert all("(lines[].quantity)" in p.message for p in problems)


def test_widening_int_to_long_is_only_backward_compatible(tmp_path: Path) -> None:
    def widen_quantity(s: Schema) -> None:
        field(field(s, "lines")["type"]["items"], "quantity")["type"] = "long"

    problems = two_versions(tmp_path, widen_quantity)

    # Avro promotes int to long when reading, never long to int.
    assert [p.direction for p in problems] == [Direction.FORWARD]
    assert "reader type: int not compatible with writer type: long" in problems[0].message


def test_every_pair_of_versions_is_checked_not_only_neighbours(tmp_path: Path) -> None:
    v1 = shipped("orders", "OrderCompleted")
    note = {"name": "note", "type": "string", "default": "", "doc": "Note."}
    v2 = evolve(v1, lambda s: s["fields"].append(dict(note)))
    # v3 drops the default: fine against v2 (which always writes note), not against v1.
    v3 = evolve(v1, lambda s: s["fields"].append({k: v for k, v in note.items() if k != "default"}))
    for number, schema in enumerate([v1, v2, v3], start=1):
        write(tmp_path, f"orders/OrderCompleted.v{number}.avsc", schema)

    problems = check_schemas(tmp_path)

    assert len(problems) == 1
    assert problems[0].direction is Direction.BACKWARD
    assert "v1 -> v3" in problems[0].message


def test_field_without_doc_is_rejected(tmp_path: Path) -> None:
    schema = shipped("orders", "OrderPlaced")
    del field(field(schema, "lines")["type"]["items"], "sku")["doc"]
    write(tmp_path, "orders/OrderPlaced.v1.avsc", schema)

    problems = check_schemas(tmp_path)

    assert [p.kind for p in problems] == [ProblemKind.MISSING_DOC]
    assert "'sku'" in problems[0].message
    assert "orderpipeline.orders.OrderLine" in problems[0].message


def test_record_with_blank_doc_is_rejected(tmp_path: Path) -> None:
    schema = shipped("orders", "OrderCompleted")
    schema["doc"] = "  "
    write(tmp_path, "orders/OrderCompleted.v1.avsc", schema)

    problems = check_schemas(tmp_path)

    assert [p.kind for p in problems] == [ProblemKind.MISSING_DOC]
    assert "record orderpipeline.orders.OrderCompleted has no doc" in problems[0].message


def test_file_named_after_another_type_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "orders/OrderShipped.v1.avsc", shipped("orders", "OrderPlaced"))

    problems = check_schemas(tmp_path)

    assert [p.kind for p in problems] == [ProblemKind.BAD_NAME]
    assert "'OrderPlaced'" in problems[0].message


@pytest.mark.parametrize(
    "file_name",
    ["OrderPlaced.avsc", "OrderPlaced.v0.avsc", "OrderPlaced.v01.avsc", "OrderPlaced.V1.avsc"],
)
def test_file_name_without_a_proper_version_is_rejected(tmp_path: Path, file_name: str) -> None:
    write(tmp_path, f"orders/{file_name}", shipped("orders", "OrderPlaced"))

    problems = check_schemas(tmp_path)

    assert [p.kind for p in problems] == [ProblemKind.BAD_NAME]
    assert "<Type>.v<N>.avsc" in problems[0].message


def test_namespace_must_match_the_producer_directory(tmp_path: Path) -> None:
    write(tmp_path, "payments/OrderPlaced.v1.avsc", shipped("orders", "OrderPlaced"))

    problems = check_schemas(tmp_path)

    assert [p.kind for p in problems] == [ProblemKind.BAD_NAME]
    assert "'orderpipeline.payments'" in problems[0].message


def test_two_files_defining_the_same_version_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "orders/OrderPlaced.v1.avsc", shipped("orders", "OrderPlaced"))
    write(tmp_path, "payments/OrderPlaced.v1.avsc", shipped("orders", "OrderPlaced"))

    problems = check_schemas(tmp_path)

    duplicates = of_kind(problems, ProblemKind.DUPLICATE_VERSION)
    assert len(duplicates) == 1
    assert "orderpipeline.orders.OrderPlaced v1 is already defined" in duplicates[0].message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "cannot read JSON"),
        ('"string"', "top-level schema must be a record"),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "OrderCompleted",
                    "doc": "d",
                    "fields": [{"name": "order_id", "type": "strng", "doc": "d"}],
                }
            ),
            "fastavro cannot parse it",
        ),
        (
            json.dumps(
                {
                    "type": "record",
                    "name": "OrderCompleted",
                    "doc": "d",
                    "fields": [
                        {
                            "name": "at",
                            "type": {"type": "string", "logicalType": "timestamp-millis"},
                            "doc": "d",
                        }
                    ],
                }
            ),
            "timestamp-millis",
        ),
    ],
    ids=["bad-json", "not-a-record", "unknown-type", "logical-type-on-wrong-base"],
)
def test_unparsable_schema_is_reported(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "orders/OrderCompleted.v1.avsc", text)

    problems = check_schemas(tmp_path)

    assert ProblemKind.INVALID in {p.kind for p in problems}
    assert any(expected in p.message for p in of_kind(problems, ProblemKind.INVALID))


def test_an_empty_schemas_dir_is_rejected(tmp_path: Path) -> None:
    problems = check_schemas(tmp_path)

    assert [p.kind for p in problems] == [ProblemKind.INVALID]


def test_cli_exits_1_and_explains_a_breaking_pair(tmp_path: Path) -> None:
    base = shipped("payments", "PaymentCaptured")
    write(tmp_path, "payments/PaymentCaptured.v1.avsc", base)
    write(
        tmp_path,
        "payments/PaymentCaptured.v2.avsc",
        evolve(base, lambda s: field(s, "amount").update(type="string")),
    )

    run = subprocess.run(
        [sys.executable, str(TOOL), "--schemas-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 1, run.stdout + run.stderr
    assert "v1 -> v2 is not backward compatible" in run.stdout
    assert "v1 -> v2 is not forward compatible" in run.stdout
    assert "reader type: string not compatible with writer type: long" in run.stdout
    assert "(amount)" in run.stdout
    assert "FAILED: 2 problem(s)" in run.stdout


def test_cli_exits_0_on_the_shipped_schemas() -> None:
    run = subprocess.run(
        [sys.executable, str(TOOL), "--schemas-dir", str(SHIPPED)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("OK: 29 schema file(s)")

"""Dump files give back every record exactly, in both formats, whatever its bytes."""

from __future__ import annotations

from pathlib import Path

import fastavro
import pytest

from pipeline_cli.events import DUMP_SCHEMA, DumpFormat, DumpWriter, format_of, read_dump
from pipeline_cli.kafka_io import RawRecord

RECORDS = [
    RawRecord(
        topic="orders.events",
        partition=3,
        offset=41,
        timestamp_ms=1_740_830_400_123,
        key=b"order-1",
        value=b"\xc3\x01\x00\xffavro bytes",
        headers=(("event_id", b"e-1"), ("event_type", b"OrderPlaced"), ("event_id", b"e-2")),
    ),
    RawRecord(
        topic="orders.events",
        partition=0,
        offset=0,
        timestamp_ms=0,
        key=b"\xff\xfe not utf-8",
        value=None,
        headers=(("junk", b"\x00\xff"), ("empty", None)),
    ),
    RawRecord("scratch", 1, 9, 1, key=None, value=b"", headers=()),
]


@pytest.mark.parametrize("file_format", list(DumpFormat))
def test_a_dump_reads_back_every_record_exactly(tmp_path: Path, file_format: DumpFormat) -> None:
    path = tmp_path / "dump"  # no suffix: the reader goes by the content
    with path.open("wb") as file:
        writer = DumpWriter(file, file_format)
        for record in RECORDS:
            writer.write(record)
        writer.close()
    assert list(read_dump(path)) == RECORDS


def test_an_avro_dump_is_a_container_file_any_avro_reader_opens(tmp_path: Path) -> None:
    path = tmp_path / "dump.avro"
    with path.open("wb") as file:
        writer = DumpWriter(file, DumpFormat.AVRO)
        writer.write(RECORDS[0])
        writer.close()
    with path.open("rb") as file:
        reader = fastavro.reader(file)
        schema = reader.writer_schema
        assert isinstance(schema, dict)
        assert schema["name"] == "pipeline.cli.DumpedRecord"
        (datum,) = list(reader)
    assert isinstance(datum, dict)
    assert datum["value"] == RECORDS[0].value
    assert [f["name"] for f in DUMP_SCHEMA["fields"]] == [
        "topic", "partition", "offset", "timestamp_ms", "key", "value", "headers"
    ]  # fmt: skip


def test_a_jsonl_dump_keeps_bytes_in_base64_one_record_a_line(tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl"
    with path.open("wb") as file:
        writer = DumpWriter(file, DumpFormat.JSONL)
        writer.write(RECORDS[0])
        writer.close()
    (line,) = path.read_text().splitlines()
    assert '"key": "b3JkZXItMQ=="' in line
    assert '["event_type", "T3JkZXJQbGFjZWQ="]' in line


def test_a_line_that_is_no_dumped_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl"
    path.write_text('{"topic": "t"}\n')
    with pytest.raises(ValueError, match=r"dump.jsonl:1: not a dumped record"):
        list(read_dump(path))


def test_the_format_follows_the_suffix_unless_chosen() -> None:
    assert format_of(Path("x.avro"), None) is DumpFormat.AVRO
    assert format_of(Path("x.jsonl"), None) is DumpFormat.JSONL
    assert format_of(Path("x"), None) is DumpFormat.JSONL
    assert format_of(Path("x.avro"), DumpFormat.JSONL) is DumpFormat.JSONL

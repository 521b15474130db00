"""Avro single-object encoding over the schemas in `schemas/`.

Wire format (Avro spec, "Single object encoding"): 0xC3 0x01, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema's canonical form, then the binary datum. Any
message can therefore be decoded from the schema files alone, whichever version wrote it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

MAGIC = b"\xc3\x01"
HEADER_LENGTH = len(MAGIC) + 8
SCHEMA_FILE = re.compile(r"^(?P<type>[A-Z][A-Za-z0-9]*)\.v(?P<version>\d+)\.avsc$")


class DecodeError(ValueError):
    """The bytes are not a message this pipeline can read (poison message)."""


class UnknownEventTypeError(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    event_type: str
    version: int
    producer: str
    parsed: Any
    fingerprint: bytes
    path: Path


class SchemaStore:
    """Every version of every schema; encodes with the newest, decodes any."""

    def __init__(self, versions: list[SchemaVersion]) -> None:
        self._by_fingerprint = {v.fingerprint: v for v in versions}
        self._latest: dict[str, SchemaVersion] = {}
        for v in sorted(versions, key=lambda v: v.version):
            self._latest[v.event_type] = v

    @classmethod
    def load(cls, schemas_dir: Path) -> SchemaStore:
        versions = []
        for path in sorted(schemas_dir.glob("*/*.avsc")):
            match = SCHEMA_FILE.match(path.name)
            if not match:
                raise ValueError(f"{path}: schema files are named <Type>.v<N>.avsc")
            # Each file is parsed on its own: files may redefine the same nested record names.
            parsed = parse_schema(json.loads(path.read_text()), named_schemas={})
            canonical = to_parsing_canonical_form(parsed)
            versions.append(
                SchemaVersion(
                    event_type=match["type"],
                    version=int(match["version"]),
                    producer=path.parent.name,
                    parsed=parsed,
                    fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
                    path=path,
                )
            )
        if not versions:
            raise ValueError(f"no schemas found under {schemas_dir}")
        return cls(versions)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._latest)

    def latest(self, event_type: str) -> SchemaVersion:
        try:
            return self._latest[event_type]
        except KeyError:
            raise UnknownEventTypeError(event_type) from None

    def encode(self, event_type: str, payload: Mapping[str, Any]) -> bytes:
        schema = self.latest(event_type)
        buffer = io.BytesIO()
        buffer.write(MAGIC)
        buffer.write(schema.fingerprint)
        schemaless_writer(buffer, schema.parsed, payload)
        return buffer.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Returns (event type, record), read with the newest schema of that type."""
        if len(data) < HEADER_LENGTH or data[:2] != MAGIC:
            raise DecodeError("not Avro single-object encoded (bad marker)")
        writer = self._by_fingerprint.get(data[2:HEADER_LENGTH])
        if writer is None:
            raise DecodeError(f"unknown schema fingerprint {data[2:HEADER_LENGTH].hex()}")
        reader = self._latest[writer.event_type]
        # Resolution only when an older version wrote it; same-schema reads skip that cost.
        reader_schema = None if reader is writer else reader.parsed
        try:
            record = schemaless_reader(
                io.BytesIO(data[HEADER_LENGTH:]), writer.parsed, reader_schema
            )
        except Exception as error:
            raise DecodeError(f"corrupt {writer.event_type} datum: {error}") from error
        if not isinstance(record, dict):
            raise DecodeError(f"{writer.event_type} datum is not a record")
        return writer.event_type, record

"""Validate the Avro schemas under schemas/ and check schema evolution.

Every ``schemas/<producer>/<Type>.v<N>.avsc`` must parse, document every
record and field, be named after its file and live in the namespace
``orderpipeline.<producer>``. Every pair of versions of one type must be both
backward compatible (a reader on the newer version reads data written with the
older one) and forward compatible (the other way round), as judged by the
official ``avro`` library's checker. The result is a list of ``Problem``s;
the CLI prints them and exits 1 when there is any.

Usage: python tools/schemas_check.py [--schemas-dir schemas]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import avro.errors
import avro.schema
import fastavro
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

NAMESPACE_ROOT = "orderpipeline"
FILE_NAME = re.compile(r"^(?P<type>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")
DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"


class ProblemKind(StrEnum):
    INVALID = "invalid"
    MISSING_DOC = "missing-doc"
    BAD_NAME = "bad-name"
    DUPLICATE_VERSION = "duplicate-version"
    INCOMPATIBLE = "incompatible"


class Direction(StrEnum):
    # Reader on the newer version, writer on the older: upgraded consumers can
    # still read what is already in the topic.
    BACKWARD = "backward"
    # Reader on the older version, writer on the newer: consumers not yet
    # upgraded can read what upgraded producers write.
    FORWARD = "forward"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    path: Path
    message: str
    direction: Direction | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {_display(self.path)}: {self.message}"


@dataclass(frozen=True)
class _Version:
    fullname: str
    version: int
    path: Path
    raw: dict[str, object]
    parsed: avro.schema.Schema


def check_schemas(schemas_dir: Path) -> list[Problem]:
    """Return every problem found in the schemas under ``schemas_dir``."""
    if not schemas_dir.is_dir():
        return [Problem(ProblemKind.INVALID, schemas_dir, "not a directory")]
    files = sorted(schemas_dir.rglob("*.avsc"))
    if not files:
        # An empty tree almost always means a wrong --schemas-dir, which must
        # not pass silently.
        return [Problem(ProblemKind.INVALID, schemas_dir, "no .avsc files found")]

    problems: list[Problem] = []
    versions: dict[str, dict[int, _Version]] = defaultdict(dict)
    for path in files:
        version = _check_file(schemas_dir, path, problems)
        if version is None:
            continue
        existing = versions[version.fullname].get(version.version)
        if existing is not None:
            problems.append(
                Problem(
                    ProblemKind.DUPLICATE_VERSION,
                    path,
                    f"{version.fullname} v{version.version} is already defined by "
                    f"{_display(existing.path)}",
                )
            )
            continue
        versions[version.fullname][version.version] = version

    for fullname in sorted(versions):
        by_number = versions[fullname]
        for old, new in itertools.combinations(sorted(by_number), 2):
            problems.extend(_check_pair(by_number[old], by_number[new]))
    return problems


def _check_file(schemas_dir: Path, path: Path, problems: list[Problem]) -> _Version | None:
    """Validate one file; return it as a version when it can take part in compatibility checks."""
    try:
        text = path.read_text(encoding="utf-8")
        raw: object = json.loads(text)
    except (OSError, ValueError) as exc:
        problems.append(Problem(ProblemKind.INVALID, path, f"cannot read JSON: {exc}"))
        return None
    if not isinstance(raw, dict) or raw.get("type") != "record":
        problems.append(Problem(ProblemKind.INVALID, path, "top-level schema must be a record"))
        return None

    # fastavro signals bad schemas with several unrelated exception types.
    try:
        parsed_fast = fastavro.parse_schema(raw)
    except Exception as exc:
        problems.append(Problem(ProblemKind.INVALID, path, f"fastavro cannot parse it: {exc}"))
        return None
    try:
        # The avro library turns some mistakes (e.g. a logicalType on the wrong
        # base type) into warnings and silently drops the annotation.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parsed = avro.schema.parse(text)
    except avro.errors.AvroException as exc:
        problems.append(Problem(ProblemKind.INVALID, path, f"avro cannot parse it: {exc}"))
        return None
    for warning in caught:
        # Only avro's own warnings: a ResourceWarning from garbage collection elsewhere in
        # the process can land in the same window and says nothing about this schema.
        if issubclass(warning.category, ResourceWarning):
            continue
        problems.append(Problem(ProblemKind.INVALID, path, f"avro: {warning.message}"))

    problems.extend(Problem(ProblemKind.MISSING_DOC, path, msg) for msg in _missing_docs(raw))

    # A parsed record is a dict whose "name" is the full name, namespace included.
    assert isinstance(parsed_fast, dict)
    fullname = str(parsed_fast["name"])
    namespace, _, record_name = fullname.rpartition(".")
    name_ok = True
    relative = path.relative_to(schemas_dir)
    if len(relative.parts) != 2:
        problems.append(
            Problem(ProblemKind.BAD_NAME, path, "expected the layout <producer>/<Type>.v<N>.avsc")
        )
        name_ok = False
    else:
        expected_ns = f"{NAMESPACE_ROOT}.{relative.parts[0]}"
        if namespace != expected_ns:
            # The avro checker compares only short record names, so a namespace
            # change between versions would otherwise go unnoticed.
            problems.append(
                Problem(
                    ProblemKind.BAD_NAME,
                    path,
                    f"record namespace is {namespace!r}, "
                    f"expected {expected_ns!r} from its directory",
                )
            )
    match = FILE_NAME.match(path.name)
    if match is None:
        problems.append(
            Problem(ProblemKind.BAD_NAME, path, "file name must be <Type>.v<N>.avsc with N >= 1")
        )
        return None
    if match["type"] != record_name:
        problems.append(
            Problem(
                ProblemKind.BAD_NAME,
                path,
                f"record is named {record_name!r} but the file name says {match['type']!r}",
            )
        )
        name_ok = False
    if not name_ok:
        # Without a trustworthy type identity any pairing would be a guess.
        return None
    return _Version(fullname, int(match["version"]), path, raw, parsed)


def _missing_docs(schema: object, enclosing: str = "") -> list[str]:
    """Describe every record and field in ``schema`` that has no non-blank doc."""
    missing: list[str] = []
    if isinstance(schema, list):
        for branch in schema:
            missing.extend(_missing_docs(branch, enclosing))
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "record":
            name = str(schema.get("name", "?"))
            if "." not in name and schema.get("namespace"):
                name = f"{schema['namespace']}.{name}"
            elif "." not in name and enclosing:
                name = f"{enclosing}.{name}"
            namespace = name.rpartition(".")[0]
            if not _has_doc(schema):
                missing.append(f"record {name} has no doc")
            fields = schema.get("fields")
            for field in fields if isinstance(fields, list) else []:
                if not isinstance(field, dict):
                    continue
                if not _has_doc(field):
                    missing.append(f"field {field.get('name')!r} of record {name} has no doc")
                missing.extend(_missing_docs(field.get("type"), namespace))
        elif kind == "array":
            missing.extend(_missing_docs(schema.get("items"), enclosing))
        elif kind == "map":
            missing.extend(_missing_docs(schema.get("values"), enclosing))
    return missing


def _has_doc(node: dict[str, object]) -> bool:
    doc = node.get("doc")
    return isinstance(doc, str) and doc.strip() != ""


def _check_pair(old: _Version, new: _Version) -> list[Problem]:
    problems: list[Problem] = []
    for direction, reader, writer in (
        (Direction.BACKWARD, new, old),
        (Direction.FORWARD, old, new),
    ):
        # A fresh checker per pair: it memoises results by object identity.
        checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # avro leaves __init__ unannotated
        result = checker.get_compatibility(reader.parsed, writer.parsed)
        if result.compatibility is SchemaCompatibilityType.compatible:
            continue
        problems.append(
            Problem(
                ProblemKind.INCOMPATIBLE,
                new.path,
                _describe_incompatibility(old, new, direction, reader, writer, result),
                direction,
            )
        )
    return problems


def _describe_incompatibility(
    old: _Version,
    new: _Version,
    direction: Direction,
    reader: _Version,
    writer: _Version,
    result: SchemaCompatibilityResult,
) -> str:
    kinds = sorted({str(kind.value) for kind in result.incompatibilities})
    locations = set(result.locations)
    # The checker adds the root "/" to every merged result, and when a writer
    # union is involved it loses the real location; only show "/" if it is all
    # there is.
    if len(locations) > 1:
        locations.discard("/")
    where = [_describe_location(reader.raw, loc) for loc in sorted(locations)]
    return "\n".join(
        [
            f"{new.fullname} v{old.version} -> v{new.version} is not {direction} compatible: "
            f"a reader on v{reader.version} cannot read data written with v{writer.version} "
            f"(reader {_display(reader.path)}, writer {_display(writer.path)})",
            f"    incompatibility: {', '.join(kinds)}",
            f"    checker says:    {'; '.join(sorted(result.messages))}",
            f"    at (in reader):  {', '.join(where)}",
        ]
    )


def _describe_location(reader: dict[str, object], location: str) -> str:
    """Append the dotted field path a checker location points at in the reader, if it resolves."""
    node: object = reader
    names: list[str] = []
    tokens = [token for token in location.split("/") if token]
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "fields" and isinstance(node, dict) and index + 1 < len(tokens):
            fields = node.get("fields")
            position = tokens[index + 1]
            if not (
                isinstance(fields, list) and position.isdigit() and int(position) < len(fields)
            ):
                break
            node = fields[int(position)]
            if not isinstance(node, dict):
                break
            names.append(str(node.get("name")))
            index += 2
            continue
        if token in ("type", "items", "values") and isinstance(node, dict):
            node = node.get(token)
            if token != "type" and names:
                names[-1] += "[]" if token == "items" else "{}"
            index += 1
            continue
        break
    return f"{location} ({'.'.join(names)})" if names else location


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--schemas-dir",
        type=Path,
        default=DEFAULT_SCHEMAS_DIR,
        help="directory holding <producer>/<Type>.v<N>.avsc (default: the repository's schemas/)",
    )
    args = parser.parse_args(argv)
    schemas_dir: Path = args.schemas_dir

    problems = check_schemas(schemas_dir)
    if problems:
        for problem in problems:
            print(problem)
        print(f"\nFAILED: {len(problems)} problem(s) in {_display(schemas_dir)}")
        return 1
    count = len(list(schemas_dir.rglob("*.avsc")))
    print(f"OK: {count} schema file(s) in {_display(schemas_dir)}: valid, documented, compatible")
    return 0


if __name__ == "__main__":
    sys.exit(main())

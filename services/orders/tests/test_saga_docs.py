"""docs/ARCHITECTURE.md shows the saga as it is in code: every row of the table."""

from __future__ import annotations

import re

from kit.settings import REPO_ROOT
from orders.domain.saga import TRANSITIONS


def test_the_documented_table_lists_exactly_the_transitions_in_code() -> None:
    text = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    documented = set(re.findall(r"^\| ([A-Z_]+) \| (\w+) \|", text, flags=re.MULTILINE))
    in_code = {(status.value, event) for status, event in TRANSITIONS}
    assert documented == in_code

"""The Grafana dashboards in deploy/grafana/dashboards and the PromQL behind their panels.

Grafana fills its variables into a panel's query before sending it to Prometheus
(``$__rate_interval``, ``$job``, ...). ``to_promql`` does the same with fixed values, so
tests and tools/render_dashboards.py can send every panel's query to Prometheus' HTTP API
themselves::

    for dashboard in load_dashboards():
        for query in panel_queries(dashboard):
            promql = to_promql(query.expr, rate_interval="20s")
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboards"

# A dashboard and its panels are Grafana's JSON model as stored; only the keys read here
# (title, panels, targets, gridPos, fieldConfig, ...) are relied on.
Dashboard = dict[str, Any]
Panel = dict[str, Any]


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel, as written in the dashboard (variables not yet filled in)."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


class UnknownVariableError(ValueError):
    """A query uses a Grafana variable ``to_promql`` has no value for."""


def dashboard_files(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def load_dashboard(path: Path) -> Dashboard:
    model = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(model, dict):
        raise ValueError(f"{path}: a dashboard is a JSON object, not {type(model).__name__}")
    return model


def load_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Dashboard]:
    """Every dashboard in ``directory``, ordered by file name."""
    return [load_dashboard(path) for path in dashboard_files(directory)]


def panels(dashboard: Dashboard) -> list[Panel]:
    """Every panel except row headers, in order, including panels inside collapsed rows
    (kept under the row's ``panels``) and in the pre-5.0 ``rows`` layout."""
    found: list[Panel] = []

    def visit(items: Iterable[Panel]) -> None:
        for panel in items:
            if panel.get("type") != "row":
                found.append(panel)
            visit(panel.get("panels", []))

    for row in dashboard.get("rows", []):
        visit(row.get("panels", []))
    visit(dashboard.get("panels", []))
    return found


def panel_queries(dashboard: Dashboard) -> list[PanelQuery]:
    """The query of every target of every panel. Hidden targets are left out: Grafana does
    not run them either."""
    title = str(dashboard.get("title", ""))
    return [
        PanelQuery(title, str(panel.get("title", "")), str(target.get("refId", "")), expr)
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if (expr := target.get("expr")) and not target.get("hide", False)
    ]


# $name, ${name} and ${name:format}, and the deprecated [[name]] / [[name:format]].
_VARIABLE = re.compile(
    r"\$\{(?P<braced>[^}:]+)(?::[^}]*)?\}"
    r"|\[\[(?P<bracketed>[^\]:]+)(?::[^\]]*)?\]\]"
    r"|\$(?P<plain>\w+)"
)
_DURATION = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_SECONDS_PER_UNIT = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}


def duration_seconds(duration: str) -> float:
    """``"1m30s"`` -> 90.0: a PromQL duration in seconds."""
    if not _DURATION.fullmatch(duration):
        raise ValueError(f"not a PromQL duration: {duration!r}")
    return sum(
        int(amount) * _SECONDS_PER_UNIT[unit] for amount, unit in _DURATION_PART.findall(duration)
    )


def to_promql(
    expr: str,
    *,
    rate_interval: str = "1m",
    job: str = ".+",
    instance: str = ".+",
    interval: str = "15s",
    time_range: str = "30m",
) -> str:
    """``expr`` with Grafana's variables replaced, ready for Prometheus' HTTP API.

    ``job`` and ``instance`` are regexes, as Grafana substitutes a multi-value variable
    inside ``=~"..."`` (``.+`` is the dashboards' "All"). Durations are PromQL durations;
    ``time_range`` stands for the dashboard's time range (``$__range``). Raises
    ``UnknownVariableError`` for any other variable, so a new one cannot slip through unfilled.
    """
    values = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": time_range,
        "__rate_interval_ms": _milliseconds(rate_interval),
        "__interval_ms": _milliseconds(interval),
        "__range_ms": _milliseconds(time_range),
        "__range_s": str(round(duration_seconds(time_range))),
        "job": job,
        "instance": instance,
    }

    def value_of(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        try:
            return values[name]
        except KeyError:
            raise UnknownVariableError(f"no value for ${name} in {expr!r}") from None

    return _VARIABLE.sub(value_of, expr)


def _milliseconds(duration: str) -> str:
    return str(round(duration_seconds(duration) * 1000))


# What metric_names strips before looking for names: string literals (label values, so
# "$job" too), label matchers, range and subquery brackets, grouping clauses.
_NOT_NAMES = re.compile(
    r'"(?:[^"\\]|\\.)*"'
    r"|'(?:[^'\\]|\\.)*'"
    r"|\{[^}]*\}"
    r"|\[[^\]]*\]"
    r"|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
# A name not glued to a number (1e3, 5m) and not followed by "(" (a function or aggregation).
_NAME = re.compile(r"(?<![\w.:])[A-Za-z_:][\w:]*(?!\w|:|\s*\()")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"bool", "offset", "atan2", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names (and recording rule names) a query reads, found with regexes: good
    enough for the dashboards' PromQL, not a parser."""
    bare = _NOT_NAMES.sub(" ", expr)
    return {name for name in _NAME.findall(bare) if name.lower() not in _KEYWORDS}

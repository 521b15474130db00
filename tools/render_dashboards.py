"""Draw every Grafana dashboard as one PNG from a real Prometheus, no Grafana needed.

Each panel's queries go through Prometheus' ``query_range`` API for the last ``--minutes``
and are drawn where the panel's ``gridPos`` puts it: time series as lines with Grafana's
legend format, stat and bar gauge panels as their last values in the panel's unit. A panel
whose queries return nothing says "no data"; a query Prometheus rejects says so, and the
command exits 1 after writing every PNG.

    .venv/bin/python -m tools.render_dashboards --prometheus http://127.0.0.1:9090 \\
        --out docs/dashboards --minutes 15

writes ``docs/dashboards/<dashboard uid>.png``. Run it from the repository root.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MultipleLocator

from tools.dashboards import DASHBOARDS_DIR, Dashboard, Panel, load_dashboards, panels, to_promql


@dataclass(frozen=True)
class Series:
    """One series of a ``query_range`` answer."""

    labels: Mapping[str, str]
    times: Sequence[float]  # Unix seconds
    values: Sequence[float]


# (PromQL, start, end, step) -> the series; raises QueryError when Prometheus refuses.
QueryRange = Callable[[str, float, float, float], list[Series]]


class QueryError(Exception):
    """Prometheus refused a query (bad PromQL, timeout, ...)."""


class PrometheusQueryRange:
    """``QueryRange`` over Prometheus' HTTP API (``GET /api/v1/query_range``)."""

    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/api/v1/query_range"

    def __call__(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        response = self._client.get(
            self._url, params={"query": promql, "start": start, "end": end, "step": step}
        )
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise QueryError(f"{body.get('errorType', response.status_code)}: {body.get('error')}")
        return [
            Series(
                labels=item["metric"],
                times=[float(t) for t, _ in item["values"]],
                values=[float(v) for _, v in item["values"]],
            )
            for item in body["data"]["result"]
        ]


@dataclass(frozen=True)
class Window:
    """The time range drawn and the values Grafana would give its interval variables."""

    end: float
    minutes: int
    scrape_interval: float

    @property
    def start(self) -> float:
        return self.end - self.minutes * 60

    @property
    def step(self) -> float:
        # About 240 points across, never finer than Prometheus scrapes.
        wanted = self.minutes * 60 / 240
        return max(
            self.scrape_interval, math.ceil(wanted / self.scrape_interval) * self.scrape_interval
        )

    @property
    def rate_interval(self) -> str:
        # Grafana's $__rate_interval: max($__interval + scrape interval, 4 * scrape interval).
        return f"{round(max(self.step + self.scrape_interval, 4 * self.scrape_interval))}s"

    def promql(self, expr: str) -> str:
        return to_promql(
            expr,
            rate_interval=self.rate_interval,
            interval=f"{round(self.step)}s",
            time_range=f"{self.minutes}m",
        )


# Grafana's dark theme.
BACKGROUND = "#111217"
PANEL = "#181b1f"
BORDER = "#2c3235"
TEXT = "#ccccdc"
DIM = "#8e8e8e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9"]
PALETTE += ["#705da0", "#37872d", "#fade2a", "#447ebc", "#c15c17", "#890f02", "#0a437c"]
NAMED_COLORS = {
    "green": "#73bf69",
    "red": "#f2495c",
    "orange": "#ff9830",
    "yellow": "#fade2a",
    "blue": "#5794f2",
    "purple": "#b877d9",
    "text": TEXT,
}

# Grafana's layout grid: 24 columns; one row unit is 30 px; drawn 1920 px wide.
WIDTH_PX = 1920
COLUMN_PX = WIDTH_PX / 24
ROW_PX = 30
HEADER_PX = 56
GAP_PX = 4
DPI = 100

UNIT_LABELS = {
    "s": "seconds",
    "ms": "milliseconds",
    "ops": "ops/s",
    "opm": "ops/min",
    "reqps": "req/s",
    "percentunit": "percent",
    "currencyEUR": "EUR",
    "short": "count",
    "none": "",
}


def render_dashboard(dashboard: Dashboard, query: QueryRange, window: Window) -> RenderResult:
    """Draw ``dashboard`` with the data ``query`` returns for ``window``."""
    all_panels = [*panels(dashboard), *_row_headers(dashboard)]
    grid_rows = max((_grid(p)["y"] + _grid(p)["h"] for p in all_panels), default=1)
    height_px = HEADER_PX + grid_rows * ROW_PX + GAP_PX
    figure = Figure(figsize=(WIDTH_PX / DPI, height_px / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(figure)
    ends_at = datetime.fromtimestamp(window.end, UTC).strftime("%Y-%m-%d %H:%M UTC")
    figure.text(
        GAP_PX * 3 / WIDTH_PX,
        1 - 20 / height_px,
        str(dashboard.get("title", dashboard.get("uid", ""))),
        color=TEXT,
        fontsize=15,
        fontweight="bold",
        va="center",
    )
    figure.text(
        1 - GAP_PX * 3 / WIDTH_PX,
        1 - 20 / height_px,
        f"last {window.minutes} min, until {ends_at} · job: All · instance: All",
        color=DIM,
        fontsize=10,
        ha="right",
        va="center",
    )
    canvas = _Canvas(figure, height_px)
    for row in _row_headers(dashboard):
        canvas.row_header(row)
    failures = []
    for panel in panels(dashboard):
        failures += _draw_panel(canvas, panel, query, window)
    return RenderResult(figure, failures)


@dataclass(frozen=True)
class RenderResult:
    figure: Figure
    failures: list[str]  # "<panel> / <refId>: <error>" for every query Prometheus refused

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figure.savefig(path, facecolor=BACKGROUND)


class _Canvas:
    """Grafana grid coordinates to figure fractions."""

    def __init__(self, figure: Figure, height_px: float) -> None:
        self.figure = figure
        self.height_px = height_px

    def box(
        self, left_px: float, top_px: float, width_px: float, height_px: float
    ) -> tuple[float, float, float, float]:
        """(left, bottom, width, height) in figure fractions of a box given in pixels."""
        return (
            left_px / WIDTH_PX,
            1 - (top_px + height_px) / self.height_px,
            width_px / WIDTH_PX,
            height_px / self.height_px,
        )

    def panel_px(self, panel: Panel) -> tuple[float, float, float, float]:
        grid = _grid(panel)
        return (
            grid["x"] * COLUMN_PX + GAP_PX,
            HEADER_PX + grid["y"] * ROW_PX + GAP_PX,
            grid["w"] * COLUMN_PX - 2 * GAP_PX,
            grid["h"] * ROW_PX - 2 * GAP_PX,
        )

    def row_header(self, row: Panel) -> None:
        left, top, width, height = self.panel_px(row)
        x, y, _, h = self.box(left, top, width, height)
        self.figure.text(
            x, y + h / 2, str(row.get("title", "")), color=TEXT, fontsize=12, va="center"
        )

    def panel_frame(self, panel: Panel) -> tuple[float, float, float, float]:
        """Draw the panel's background, title and unit; return its content area in px."""
        left, top, width, height = self.panel_px(panel)
        self.figure.add_artist(
            Rectangle(
                (self.box(left, top, width, height)[0], self.box(left, top, width, height)[1]),
                width / WIDTH_PX,
                height / self.height_px,
                transform=self.figure.transFigure,
                facecolor=PANEL,
                edgecolor=BORDER,
                linewidth=0.8,
                zorder=-1,  # under the panel's axes
            )
        )
        title_x, title_y, _, _ = self.box(left + 8, top + 14, 0, 0)
        self.figure.text(
            title_x, title_y, str(panel.get("title", "")), color=TEXT, fontsize=9.5, va="center"
        )
        unit = _unit(panel)
        if UNIT_LABELS.get(unit, unit):
            unit_x, unit_y, _, _ = self.box(left + width - 8, top + 14, 0, 0)
            self.figure.text(
                unit_x,
                unit_y,
                UNIT_LABELS.get(unit, unit),
                color=DIM,
                fontsize=8,
                ha="right",
                va="center",
            )
        return left + 8, top + 28, width - 16, height - 34


def _draw_panel(canvas: _Canvas, panel: Panel, query: QueryRange, window: Window) -> list[str]:
    content = canvas.panel_frame(panel)
    results: list[tuple[dict[str, Any], list[Series]]] = []
    failures = []
    for target in panel.get("targets", []):
        if not target.get("expr") or target.get("hide", False):
            continue
        try:
            series = query(window.promql(target["expr"]), window.start, window.end, window.step)
        except QueryError as error:
            failures.append(f"{panel.get('title')} / {target.get('refId')}: {error}")
            continue
        results.append((target, series))
    if failures:
        _message(canvas, content, "query failed", "#f2495c")
    elif not any(series for _, series in results):
        _message(canvas, content, "no data", DIM)
    elif panel.get("type") == "timeseries":
        _draw_timeseries(canvas, panel, content, results, window)
    elif panel.get("type") == "bargauge":
        _draw_bars(canvas, panel, content, results)
    else:  # stat, gauge and anything else: the last values, big
        _draw_values(canvas, panel, content, results)
    return failures


def _message(canvas: _Canvas, content: tuple[float, ...], text: str, color: str) -> None:
    left, top, width, height = content
    x, y, w, h = canvas.box(left, top, width, height)
    canvas.figure.text(x + w / 2, y + h / 2, text, color=color, fontsize=12, ha="center")


def _draw_timeseries(
    canvas: _Canvas,
    panel: Panel,
    content: tuple[float, float, float, float],
    results: list[tuple[dict[str, Any], list[Series]]],
    window: Window,
) -> None:
    left, top, width, height = content
    lines = [
        (legend(target.get("legendFormat", ""), series.labels), series)
        for target, series_list in results
        for series in series_list
    ]
    columns = max(1, int(width // 210))
    shown = lines[: columns * 3]  # a legend never takes more than three lines
    legend_px = 14 * math.ceil(len(shown) / columns) + 6
    axes = canvas.figure.add_axes(
        canvas.box(left + 44, top, width - 50, height - legend_px - 18), facecolor=PANEL
    )
    _style_axes(axes, _unit(panel))
    handles = []
    for index, (name, series) in enumerate(lines):
        (handle,) = axes.plot(
            series.times,
            series.values,
            color=PALETTE[index % len(PALETTE)],
            linewidth=1.2,
            label=name,
        )
        handles.append(handle)
    thresholds = _threshold_lines(panel)
    for value, color in thresholds:
        axes.axhline(value, color=color, linewidth=1, linestyle="--")
    axes.set_xlim(window.start, window.end)
    axes.xaxis.set_major_locator(MultipleLocator(_tick_spacing(window.end - window.start)))
    finite = [v for _, series in lines for v in series.values if math.isfinite(v)]
    if finite and min(finite) >= 0:
        # Like Grafana: counts and rates start at 0, and a threshold line stays in view.
        top_value = max(finite + [value for value, _ in thresholds])
        axes.set_ylim(0, top_value * 1.1 if top_value > 0 else 1)
    if shown:
        legend_box = canvas.box(left, top + height - legend_px, width, legend_px)
        canvas.figure.legend(
            handles[: len(shown)],
            [name or "value" for name, _ in shown],
            loc="upper left",
            bbox_to_anchor=(legend_box[0], legend_box[1] + legend_box[3]),
            ncols=columns,
            fontsize=7.5,
            frameon=False,
            labelcolor=TEXT,
            handlelength=1.2,
            borderaxespad=0,
        )


def _tick_spacing(seconds: float) -> float:
    """The smallest round time step giving at most eight ticks."""
    steps = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
    return next((step for step in steps if seconds / step <= 8), seconds / 8)


def _clock(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%H:%M")


def _style_axes(axes: Axes, unit: str) -> None:
    axes.tick_params(colors=DIM, labelsize=7.5, length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.grid(True, color=BORDER, lw=0.6)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _clock(value)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_value(value, unit)))


def _draw_values(
    canvas: _Canvas,
    panel: Panel,
    content: tuple[float, float, float, float],
    results: list[tuple[dict[str, Any], list[Series]]],
) -> None:
    left, top, width, height = content
    values = _last_values(panel, results)
    columns = min(len(values), max(1, int(width // 110)))
    rows = math.ceil(len(values) / columns)
    cell_w, cell_h = width / columns, height / rows
    size = max(9.0, min(30.0, cell_h * 0.45, cell_w / 5))
    for index, (name, value) in enumerate(values):
        cell_left = left + (index % columns) * cell_w
        cell_top = top + (index // columns) * cell_h
        x, y, w, h = canvas.box(cell_left, cell_top, cell_w, cell_h)
        has_name = len(values) > 1 and name
        canvas.figure.text(
            x + w / 2,
            y + h * (0.58 if has_name else 0.5),
            format_value(value, _unit(panel), _decimals(panel)),
            color=_threshold_color(panel, value),
            fontsize=size,
            fontweight="bold",
            ha="center",
            va="center",
        )
        if has_name:
            canvas.figure.text(
                x + w / 2, y + h * 0.18, name, color=TEXT, fontsize=8, ha="center", va="center"
            )


def _draw_bars(
    canvas: _Canvas,
    panel: Panel,
    content: tuple[float, float, float, float],
    results: list[tuple[dict[str, Any], list[Series]]],
) -> None:
    left, top, width, height = content
    values = _last_values(panel, results)
    axes = canvas.figure.add_axes(canvas.box(left + 80, top, width - 150, height), facecolor=PANEL)
    axes.set_axis_off()
    names = [name for name, _ in values]
    numbers = [0.0 if math.isnan(value) else value for _, value in values]
    positions = list(range(len(values)))[::-1]
    axes.barh(
        positions,
        numbers,
        height=0.6,
        color=[PALETTE[i % len(PALETTE)] for i in range(len(values))],
    )
    axes.set_xlim(0, max([*numbers, 1.0]) * 1.02)
    for position, name, (_, value) in zip(positions, names, values, strict=True):
        axes.text(
            -0.01,
            position,
            name,
            color=TEXT,
            fontsize=9,
            ha="right",
            va="center",
            transform=axes.get_yaxis_transform(),
        )
        axes.text(
            1.01,
            position,
            format_value(value, _unit(panel), _decimals(panel)),
            color=TEXT,
            fontsize=11,
            fontweight="bold",
            ha="left",
            va="center",
            transform=axes.get_yaxis_transform(),
        )


def _last_values(
    panel: Panel, results: list[tuple[dict[str, Any], list[Series]]]
) -> list[tuple[str, float]]:
    """Grafana's "lastNotNull" reduction, one value per series."""
    values = []
    for target, series_list in results:
        for series in series_list:
            numbers = [v for v in series.values if not math.isnan(v)]
            values.append(
                (
                    legend(target.get("legendFormat", ""), series.labels),
                    numbers[-1] if numbers else math.nan,
                )
            )
    return values


def legend(legend_format: str, labels: Mapping[str, str]) -> str:
    """Grafana's legend: ``{{label}}`` replaced by the series' label value; without a format
    (or "__auto"), the series' labels as Prometheus prints them."""
    if not legend_format or legend_format == "__auto":
        shown = {k: v for k, v in labels.items() if k != "__name__"}
        return ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    # A label the series lacks becomes empty, as in Grafana.
    return _LEGEND_LABEL.sub(lambda match: labels.get(match.group(1), ""), legend_format)


_LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def format_value(value: float, unit: str, decimals: int | None = None) -> str:
    """A value as Grafana shows it in ``unit`` (the units the dashboards use)."""
    if math.isnan(value):
        return "NaN"
    if unit == "s":
        return _seconds(value)
    if unit == "percentunit":
        return f"{_number(value * 100, decimals)}%"
    if unit == "currencyEUR":
        return f"€{_scaled(value, 2 if decimals is None else decimals)}"
    suffix = {"ops": " ops/s", "opm": " ops/min", "reqps": " req/s"}.get(unit, "")
    if unit in ("short", "none", "ops", "opm", "reqps"):
        return _scaled(value, decimals) + suffix
    return f"{_number(value, decimals)} {unit}"


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 0.001:
        return f"{_number(value * 1e6)} µs"
    if magnitude < 1:
        return f"{_number(value * 1000)} ms"
    if magnitude < 60:
        return f"{_number(value)} s"
    if magnitude < 3600:
        return f"{_number(value / 60)} min"
    return f"{_number(value / 3600)} h"


def _scaled(value: float, decimals: int | None = None) -> str:
    for factor, suffix in ((1e9, " B"), (1e6, " M"), (1e3, " K")):
        if abs(value) >= factor:
            return _number(value / factor, decimals if decimals else None) + suffix
    return _number(value, decimals)


def _number(value: float, decimals: int | None = None) -> str:
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if decimals is not None:
        return f"{value:.{decimals}f}"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3g}"


def _grid(panel: Panel) -> dict[str, int]:
    grid = panel.get("gridPos", {})
    return {
        key: int(grid.get(key, default))
        for key, default in (("x", 0), ("y", 0), ("w", 12), ("h", 8))
    }


def _row_headers(dashboard: Dashboard) -> list[Panel]:
    return [p for p in dashboard.get("panels", []) if p.get("type") == "row"]


def _defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = panel.get("fieldConfig", {}).get("defaults", {})
    return defaults


def _unit(panel: Panel) -> str:
    return str(_defaults(panel).get("unit", "short"))


def _decimals(panel: Panel) -> int | None:
    decimals = _defaults(panel).get("decimals")
    return None if decimals is None else int(decimals)


def _threshold_steps(panel: Panel) -> list[tuple[float | None, str]]:
    steps = _defaults(panel).get("thresholds", {}).get("steps", [])
    return [(step.get("value"), NAMED_COLORS.get(step["color"], step["color"])) for step in steps]


def _threshold_color(panel: Panel, value: float) -> str:
    color = TEXT
    for threshold, step_color in _threshold_steps(panel):
        if threshold is None or (not math.isnan(value) and value >= threshold):
            color = step_color
    return color


def _threshold_lines(panel: Panel) -> list[tuple[float, str]]:
    style = _defaults(panel).get("custom", {}).get("thresholdsStyle", {}).get("mode", "off")
    if style == "off":
        return []
    return [(value, color) for value, color in _threshold_steps(panel) if value is not None]


app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    prometheus: Annotated[str, typer.Option(help="Prometheus' base URL")] = "http://127.0.0.1:9090",
    out: Annotated[Path, typer.Option(help="where <dashboard uid>.png go")] = Path(
        "docs/dashboards"
    ),
    minutes: Annotated[int, typer.Option(min=1, help="time range drawn, ending now")] = 15,
    scrape_interval: Annotated[
        float, typer.Option(help="Prometheus' scrape_interval in seconds ($__rate_interval)")
    ] = 5.0,
    dashboards: Annotated[Path, typer.Option(help="folder of dashboard JSON")] = DASHBOARDS_DIR,
) -> None:
    """Draw every dashboard as docs/dashboards/<uid>.png from PROMETHEUS' data."""
    window = Window(end=time.time(), minutes=minutes, scrape_interval=scrape_interval)
    failed = False
    with httpx.Client(timeout=30) as client:
        query = PrometheusQueryRange(client, prometheus)
        for dashboard in load_dashboards(dashboards):
            result = render_dashboard(dashboard, query, window)
            path = out / f"{dashboard['uid']}.png"
            result.save(path)
            print(path)
            for failure in result.failures:
                print(f"  query failed: {failure}", file=sys.stderr)
                failed = True
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()

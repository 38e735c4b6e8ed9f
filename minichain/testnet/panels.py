"""A Grafana dashboard's panels drawn without Grafana: each panel's PromQL asked of
Prometheus over a time range and plotted with matplotlib, in the dashboard's own grid.

This is what ``minichain testnet panels`` does, and how ``docs/monitoring.md`` got its
picture where Grafana cannot be installed. It reads the dashboard JSON Grafana reads
(``testnet/grafana/dashboards/minichain.json``): for every ``timeseries`` panel, its
title, ``gridPos``, unit and targets (``expr``, ``legendFormat``). Grafana's template
variables are substituted as Grafana would with every value selected: ``$node`` (and
any other variable) becomes ``.*``, and ``$__rate_interval`` becomes
``max(step + scrape interval, 4 x scrape interval)``. It is a sketch of the dashboard,
not a copy of Grafana's rendering: no tooltips, thresholds or panel links.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import time
from dataclasses import dataclass

from minichain.testnet import monitor

REPO_DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                              "testnet", "grafana", "dashboards", "minichain.json")
GRID_COLUMNS = 24            # Grafana's grid is 24 columns wide; a row unit is 30 px
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLOURS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#ffb357", "#96d98d",
           "#ff9830", "#c4162a", "#1f60c4"]
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")


class DashboardError(Exception):
    """The dashboard file cannot be read or has no panels to draw."""


@dataclass
class Target:
    expr: str
    legend: str


@dataclass
class Panel:
    title: str
    x: int
    y: int
    w: int
    h: int
    unit: str
    log: bool
    minimum: float | None
    targets: list[Target]


def load(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise DashboardError(f"no dashboard at {path} (pass --dashboard PATH to a Grafana dashboard JSON)") from None
    except (OSError, ValueError) as exc:
        raise DashboardError(f"cannot read the dashboard {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("panels"), list):
        raise DashboardError(f"{path} is not a Grafana dashboard (no 'panels' list)")
    return data


def panels(dashboard: dict) -> list[Panel]:
    """The time-series panels of a dashboard, in grid order."""
    out = []
    for p in dashboard["panels"]:
        if p.get("type") != "timeseries":
            continue
        grid = p.get("gridPos", {})
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        scale = defaults.get("custom", {}).get("scaleDistribution", {}).get("type")
        targets = [Target(t["expr"], t.get("legendFormat", "")) for t in p.get("targets", []) if t.get("expr")]
        out.append(Panel(p.get("title", ""), grid.get("x", 0), grid.get("y", 0), grid.get("w", 12), grid.get("h", 8),
                         defaults.get("unit", "short"), scale == "log", defaults.get("min"), targets))
    if not out:
        raise DashboardError("the dashboard has no time-series panels")
    return sorted(out, key=lambda p: (p.y, p.x))


def substitute(expr: str, rate_interval: float) -> str:
    """Grafana's variables in ``expr`` replaced as Grafana would with "All" selected."""
    def var(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name == "__rate_interval":
            return f"{int(math.ceil(rate_interval))}s"
        return ".*"
    return _VARIABLE.sub(var, expr)


def legend(fmt: str, labels: dict) -> str:
    if not fmt:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__") + "}"
    return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), fmt)


def fetch(url: str, panel: Panel, start: float, end: float, step: float,
          scrape: float = monitor.SCRAPE_INTERVAL) -> list[tuple[str, list[float], list[float]]]:
    """Every series of every target of ``panel``: (legend, times, values)."""
    rate_interval = max(step + scrape, 4 * scrape)
    series = []
    for target in panel.targets:
        for result in monitor.query_range(url, substitute(target.expr, rate_interval), start, end, step):
            times = [float(t) for t, _ in result["values"]]
            values = [float(v) for _, v in result["values"]]
            series.append((legend(target.legend, result["metric"]), times, values))
    return series


def _format_value(unit: str):
    def fmt(value: float, _pos=None) -> str:
        if unit == "s":
            if value == 0:
                return "0"
            return f"{value * 1000:g} ms" if abs(value) < 1 else f"{value:g} s"
        scaled, suffix = value, ""
        for factor, name in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(value) >= factor:
                scaled, suffix = value / factor, name
                break
        text = f"{scaled:.3g}{suffix}"
        return {"bytes": f"{text}B", "Bps": f"{text}B/s", "H/s": f"{text}H/s"}.get(unit, text)
    return fmt


def _ticks(start: float, end: float, most: int) -> list[float]:
    """Round times between ``start`` and ``end``, at most ``most`` of them."""
    for step in (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600):
        if (end - start) / step <= most:
            break
    first = math.ceil(start / step) * step
    return [first + k * step for k in range(int((end - first) // step) + 1)]


def render(dashboard: dict, url: str, out: str, *, minutes: float = 15.0, end: float | None = None,
           title: str | None = None, note: str = "") -> int:
    """Draw the dashboard's panels over the last ``minutes`` into the PNG ``out``;
    returns the number of series drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    from datetime import datetime

    items = panels(dashboard)
    end = time.time() if end is None else end
    start = end - minutes * 60
    step = max(1.0, minutes * 60 / 300)
    rows = max(p.y + p.h for p in items)
    width_in = 22.0
    row_in = width_in / GRID_COLUMNS * 0.62
    fig = plt.figure(figsize=(width_in, rows * row_in + 0.9), facecolor=BACKGROUND)
    grid = fig.add_gridspec(rows, GRID_COLUMNS, left=0.035, right=0.99, top=1 - 0.9 / (rows * row_in + 0.9),
                            bottom=0.02, hspace=0.0, wspace=0.0)
    drawn = 0
    for panel in items:
        ax = fig.add_subplot(grid[panel.y:panel.y + panel.h, panel.x:panel.x + panel.w])
        # Room between panels, like Grafana's gutters.
        box = ax.get_position()
        ax.set_position([box.x0 + 0.012, box.y0 + 0.03 / rows * 8, box.width - 0.016, box.height - 0.08 / rows * 8])
        ax.set_facecolor(PANEL)
        for side in ax.spines.values():
            side.set_color(GRID)
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.6)
        ax.set_title(panel.title, color=TEXT, fontsize=9, loc="left", pad=4)
        series = fetch(url, panel, start, end, step)
        for k, (name, times, values) in enumerate(series):
            clean = [v if math.isfinite(v) else float("nan") for v in values]
            ax.plot([datetime.fromtimestamp(t) for t in times], clean, color=COLOURS[k % len(COLOURS)], linewidth=1.4,
                    label=name)
            drawn += 1
        if panel.log and series:
            ax.set_yscale("log", base=2)
        elif not series:
            ax.text(0.5, 0.5, "no data", color=TEXT, ha="center", va="center", transform=ax.transAxes, fontsize=9)
        else:
            ax.yaxis.set_major_formatter(FuncFormatter(_format_value(panel.unit)))
            if panel.minimum is not None:
                top = ax.get_ylim()[1]
                ax.set_ylim(panel.minimum, top if top > panel.minimum else panel.minimum + 1)
        ax.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
        ax.set_xticks([datetime.fromtimestamp(t) for t in _ticks(start, end, max(2, panel.w // 2))])
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if minutes <= 10 else "%H:%M"))
        if series:
            ax.legend(loc="upper left", fontsize=6, ncol=2 if len(series) > 4 else 1, facecolor=PANEL,
                      edgecolor=GRID, labelcolor=TEXT, framealpha=0.8)
    heading = title or dashboard.get("title", "dashboard")
    fig.text(0.01, 1 - 0.35 / (rows * row_in + 0.9), heading, color=TEXT, fontsize=13, weight="bold", va="top")
    if note:
        fig.text(0.99, 1 - 0.4 / (rows * row_in + 0.9), note, color="#8e8e8e", fontsize=8, va="top", ha="right")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=90, facecolor=BACKGROUND)
    plt.close(fig)
    # A palette of 256 colours looks the same here (flat panels, thin lines) and is a
    # third of the size. Pillow comes with matplotlib.
    from PIL import Image

    raw.seek(0)
    Image.open(raw).convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) \
        .save(out, format="png", optimize=True)
    return drawn

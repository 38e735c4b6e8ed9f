"""A sweep's plots, chosen by its axes (matplotlib, Agg backend: PNG files only).

* **Lines** (``METRIC.png``) for every plotted metric: the mean over the seeds against the
  ``x`` axis, one line per value of the ``hue`` axis if there is a second one, the 95%
  interval as a band, and the metric's closed forms (``sim/analytic.py``) as dashed and
  dotted lines in the same colour, evaluated on a fine grid between the measured points.
* **Heatmap** (``METRIC_heatmap.png``) over two numeric axes: the mean in each cell,
  hatched where the interval contains the contour level, and the closed form's contour
  at that level drawn from a fine grid -- for selfish mining, revenue minus alpha over
  alpha x gamma with Eyal and Sirer's profitability frontier.

Axes with one value are fixed parameters and are named in the title. Sweeps with more
than two axes of several values get no plot (choose two with ``[plot] x``/``hue`` after
fixing the rest). Everything is drawn from the aggregate rows, so a plot can be redrawn
from ``results.json`` alone.
"""

from __future__ import annotations

from typing import Any

from minichain.sim.plots import _pyplot, _save   # one PNG setup for every plot of the laboratory
from minichain.sim.sweep.results import closed_value
from minichain.sim.sweep.spec import Spec

STYLES = ("--", ":", "-.")
FINE = 120                      # points per closed-form curve (and per heatmap contour axis)


def options(spec: Spec) -> dict[str, Any] | None:
    """What to draw, or None when the axes allow no plot."""
    model, chosen = spec.model, spec.plot
    swept = spec.swept
    if not swept:
        return None
    numeric = [a for a in swept if not isinstance(spec.values(a)[0], str)]
    x = chosen.x or (numeric[0] if numeric else swept[0])
    rest = [a for a in swept if a != x]
    hue = chosen.hue or (rest[0] if len(rest) == 1 else None)
    if len([a for a in rest if a != hue]) > 0:
        return None
    metrics = list(chosen.metrics) or [m for m in model.plot.metrics if m in spec.metrics] or list(spec.shown)
    heatmap = chosen.heatmap if isinstance(chosen.heatmap, str) else (
        None if chosen.heatmap is False else model.plot.heatmap)
    if heatmap not in spec.metrics or hue is None or any(isinstance(spec.values(a)[0], str) for a in (x, hue)):
        heatmap = None
    return {
        "x": x, "hue": hue, "metrics": metrics, "heatmap": heatmap,
        "logx": model.plot.logx if chosen.logx is None else chosen.logx,
        "logy": model.plot.logy if chosen.logy is None else chosen.logy,
        "contour": chosen.contour if chosen.contour is not None else model.plot.contour,
    }


def draw(spec: Spec, agg: list[dict[str, Any]], out_dir: str) -> list[str]:
    opts = options(spec)
    if opts is None:
        return []
    written = [lines(spec, agg, out_dir, metric, opts) for metric in opts["metrics"]]
    if opts["heatmap"] is not None:
        written.append(heatmap(spec, agg, out_dir, opts["heatmap"], opts))
    return written


def _fixed(spec: Spec) -> str:
    fixed = [f"{name}={values[0]}" for name, values in spec.axes if len(values) == 1]
    seeds = len(spec.seeds)
    return ", ".join(fixed + [f"{seeds} seed{'s' if seeds > 1 else ''} per point"])


def _title(spec: Spec) -> str:
    return spec.title or f"{spec.scenario}: {spec.model.about}"


def _label(spec: Spec, name: str) -> str:
    param = spec.model.param(name)
    return f"{name} ({param.about})" if param is not None else name


def _fine(values: list[Any], log: bool) -> list[Any]:
    lo, hi = min(values), max(values)
    if isinstance(values[0], int) and (hi - lo < FINE or not log):
        return list(range(lo, hi + 1))
    if log and lo > 0:
        return [lo * (hi / lo) ** (i / (FINE - 1)) for i in range(FINE)]
    return [lo + (hi - lo) * i / (FINE - 1) for i in range(FINE)]


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def lines(spec: Spec, agg: list[dict[str, Any]], out_dir: str, metric: str, opts: dict[str, Any]) -> str:
    plt = _pyplot()
    x, hue = opts["x"], opts["hue"]
    forms = spec.model.metric(metric).closed
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = list(spec.values(hue)) if hue else [None]
    cmap = plt.get_cmap("viridis")
    for k, value in enumerate(groups):
        colour = cmap(0.85 * k / max(1, len(groups) - 1)) if len(groups) > 1 else "#1f77b4"
        rows = sorted((r for r in agg if hue is None or r[hue] == value), key=lambda r: r[x])
        xs = [r[x] for r in rows]
        mean = [r[f"{metric}_mean"] for r in rows]
        if opts["logy"]:
            # No point for a rate of 0 on a log axis: the line breaks there (the band stays).
            mean = [m if m is not None and m > 0 else float("nan") for m in mean]
        label = f"{hue} = {value}" if hue else "measured"
        ax.plot(xs, mean, "o-", color=colour, markersize=3.5, linewidth=1.2, label=label)
        band = [(xv, r[f"{metric}_ci_lo"], r[f"{metric}_ci_hi"]) for xv, r in zip(xs, rows)
                if r[f"{metric}_ci_lo"] is not None]
        if band:
            bx, lo, hi = zip(*band)
            ax.fill_between(bx, lo, hi, color=colour, alpha=0.2, linewidth=0)
        if isinstance(xs[0], str):
            continue
        for form, style in zip(forms, STYLES):
            base = dict(rows[0])
            curve = [(xv, closed_value(form, {**base, x: xv})) for xv in _fine(xs, opts["logx"])]
            curve = [(a, b) for a, b in curve if b is not None]
            if curve:
                ax.plot(*zip(*curve), style, color=colour, linewidth=1)
    for form, style in zip(forms, STYLES):
        ax.plot([], [], style, color="grey", label=form.label)
    if opts["logx"]:
        ax.set_xscale("log")
        xs = sorted(spec.values(x))
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{v:g}" for v in xs])
        ax.minorticks_off()
    if opts["logy"]:
        ax.set_yscale("log", nonpositive="clip")
    if opts["contour"] is not None and metric == opts["heatmap"] and not opts["logy"]:
        ax.axhline(opts["contour"], color="black", linewidth=0.6)
    ax.set_xlabel(_label(spec, x))
    ax.set_ylabel(f"{metric}: {spec.model.metric(metric).about}", fontsize=8)
    ax.set_title(f"{_title(spec)}\n{_fixed(spec)}; bands: 95% intervals", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(groups) > 4 else 1)
    return _save(fig, out_dir, f"{metric}.png")


def heatmap(spec: Spec, agg: list[dict[str, Any]], out_dir: str, metric: str, opts: dict[str, Any]) -> str:
    import numpy as np
    from matplotlib import colors
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    x, hue, level = opts["x"], opts["hue"], opts["contour"]
    xs, ys = sorted(spec.values(x)), sorted(spec.values(hue))
    cell = {(r[x], r[hue]): r for r in agg}
    grid = np.array([[cell[(a, b)][f"{metric}_mean"] for a in xs] for b in ys], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 2.2 + 0.5 * len(ys)))
    if opts["logy"] and np.nanmax(grid) > 0:
        shown = np.ma.masked_less_equal(grid, 0)
        norm: Any = colors.LogNorm(vmin=shown.min(), vmax=shown.max())
        cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")   # a rate of 0: grey
    elif level is not None:
        shown = grid
        span = float(np.nanmax(np.abs(grid - level))) or 1.0
        norm, cmap = colors.Normalize(level - span, level + span), plt.get_cmap("RdBu_r")
    else:
        shown, norm, cmap = grid, colors.Normalize(np.nanmin(grid), np.nanmax(grid)), plt.get_cmap("viridis")
    image = ax.imshow(shown, origin="lower", aspect="auto", cmap=cmap, norm=norm)
    fig.colorbar(image, ax=ax, label=metric)
    decimals = np.nanmax(np.abs(grid)) >= 0.01 and not opts["logy"]
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            r = cell[(a, b)]
            value, lo, hi = r[f"{metric}_mean"], r[f"{metric}_ci_lo"], r[f"{metric}_ci_hi"]
            if len(xs) * len(ys) <= 200 and value is not None:
                ax.text(j, i, f"{value:.3f}" if decimals else f"{value:.2g}", ha="center", va="center", fontsize=6)
            if level is not None and lo is not None and lo <= level <= hi:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="////", edgecolor="#555555",
                                       linewidth=0))
    handles = []
    forms = spec.model.metric(metric).closed
    if level is not None and forms:
        # The closed form on a fine grid of index coordinates mapped back to values.
        def value_at(u: float, axis: list) -> float:
            k = min(max(int(np.floor(u)), 0), len(axis) - 2)
            return axis[k] + (u - k) * (axis[k + 1] - axis[k])

        us = np.linspace(-0.5, len(xs) - 0.5, FINE)
        vs = np.linspace(-0.5, len(ys) - 0.5, FINE)
        base = dict(agg[0])
        z = np.array([[_nan(closed_value(forms[0], {**base, x: value_at(u, xs), hue: value_at(v, ys)}))
                       for u in us] for v in vs], dtype=float)
        if np.nanmin(z) < level < np.nanmax(z):
            ax.contour(us, vs, z, levels=[level], colors="black", linewidths=1.5)
            handles.append(Line2D([], [], color="black", linewidth=1.5, label=f"{forms[0].label} = {level:g}"))
    if level is not None:
        handles.append(Rectangle((0, 0), 1, 1, fill=False, hatch="////", edgecolor="#555555", linewidth=0,
                                 label=f"95% interval contains {level:g}"))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=2, frameon=False)
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([f"{a:g}" for a in xs], fontsize=7)
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([f"{b:g}" for b in ys], fontsize=7)
    ax.set_xlabel(_label(spec, x), fontsize=8)
    ax.set_ylabel(_label(spec, hue), fontsize=8)
    ax.set_title(f"{_title(spec)}\n{metric}, mean over seeds; {_fixed(spec)}", fontsize=9)
    return _save(fig, out_dir, f"{metric}_heatmap.png")

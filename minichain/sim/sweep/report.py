"""The sweep's summary as text: one line per point with each shown metric's mean, its 95%
interval and the closed forms, and how many points the exact closed forms fall inside
their interval. Only reproducible numbers appear here (no wall times), so the same sweep
prints the same bytes."""

from __future__ import annotations

from typing import Any

from minichain.sim.sweep.runner import SweepResult
from minichain.sim.sweep.spec import Spec


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, str)):
        return str(value)
    if abs(value) >= 1e4:
        return f"{value:.0f}"
    return f"{value:.4g}"


def heading(spec: Spec) -> str:
    points = len(spec.points())
    seeds = spec.seeds
    seed_text = (f"seeds {seeds[0]}..{seeds[-1]}" if seeds == tuple(range(seeds[0], seeds[-1] + 1))
                 else "seeds " + ",".join(map(str, seeds)))
    fixed = [f"{name}={values[0]}" for name, values in spec.axes if len(values) == 1]
    line = f"{spec.scenario}: {points} point{'s' if points != 1 else ''} x {len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({seed_text})"
    return line + (f"; {', '.join(fixed)}" if fixed else "")


def table(result: SweepResult) -> str:
    spec = result.spec
    model = spec.model
    axes = spec.swept
    # No interval column for a metric that has none anywhere (one seed, not a proportion).
    with_ci = {m for m in spec.shown if any(r[f"{m}_ci_lo"] is not None for r in result.aggregate)}
    head = list(axes)
    for m in spec.shown:
        head += [m] + (["95% CI"] if m in with_ci else []) + [form.name for form in model.metric(m).closed]
    body = []
    for r in result.aggregate:
        cells = [fmt(r[a]) for a in axes]
        for m in spec.shown:
            lo, hi = r[f"{m}_ci_lo"], r[f"{m}_ci_hi"]
            cells.append(fmt(r[f"{m}_mean"]))
            if m in with_ci:
                cells.append("-" if lo is None else f"[{fmt(lo)}, {fmt(hi)}]")
            cells += [fmt(r[f"{m}_{form.name}"]) for form in model.metric(m).closed]
        body.append(cells)
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    lines = [heading(spec), "  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in body]
    for m in spec.shown:
        for form in model.metric(m).closed:
            if not form.exact:
                continue
            rows = [r for r in result.aggregate if r[f"{m}_ci_lo"] is not None and r[f"{m}_{form.name}"] is not None]
            inside = sum(1 for r in rows if r[f"{m}_ci_lo"] <= r[f"{m}_{form.name}"] <= r[f"{m}_ci_hi"])
            lines.append(f"{m}: {form.label} inside the 95% interval at {inside}/{len(rows)} points")
    return "\n".join(lines) + "\n"


def timing(result: SweepResult) -> str:
    """Wall time, throughput and memory (stderr: these numbers are the machine's)."""
    n = result.computed
    parts = [f"{len(result.rows)} runs"]
    if result.reused:
        parts.append(f"{result.reused} already in the results directory")
    if n:
        walls = [t["wall_s"] for t in result.timings]
        parts.append(f"{n} computed on {result.executor} in {result.elapsed:.1f} s ({n / result.elapsed:.1f} runs/s)")
        parts.append(f"slowest run {max(walls):.2f} s")
        parts.append(f"peak RSS {max(t['peak_rss_mb'] for t in result.timings):.0f} MB")
    return "; ".join(parts)


def scenarios() -> str:
    """Every scenario a sweep can run: its parameters (with defaults) and metrics."""
    from minichain.sim.sweep.scenarios import SCENARIOS

    lines = []
    for sc in SCENARIOS.values():
        lines.append(f"{sc.name}: {sc.about}")
        width = max(len(p.name) for p in sc.params) + 2
        for p in sc.params:
            choices = f" (one of {', '.join(p.choices())})" if p.choices is not None else ""
            lines.append(f"  --{p.name.replace('_', '-'):<{width}} {str(p.default):>8}  {p.about}{choices}")
        for m in sc.metrics:
            forms = "; ".join(f.label for f in m.closed)
            star = "*" if m.name in sc.headline else " "
            lines.append(f"  {star} {m.name}: {m.about}" + (f" [vs {forms}]" if forms else ""))
        lines.append("")
    lines.append("* printed by default; every metric is kept in results.csv unless --metrics (or metrics =) says otherwise")
    return "\n".join(lines) + "\n"

"""A sweep's specification: the scenario, the parameter axes, the seeds and the metrics.

From a TOML file (``docs/sweeps/*.toml``)::

    title = "Selfish mining: Eyal and Sirer's revenue curves"
    scenario = "selfish-mining"          # or: engine = "pbft" (the "replicated" scenario)
    seeds = 10                           # seeds 1..10; or a list [3, 7]; or a range "1:11"
    metrics = ["revenue", "revenue_minus_alpha"]   # optional: the metrics to keep

    [axes]
    alpha = "0.05:0.5:0.05"              # start:stop:step, stop excluded (as Python's range)
    gamma = [0, 0.5, 1]                  # a list (items may be ranges too)
    blocks = 50_000                      # one value fixes a parameter

    [plot]                               # optional
    x = "alpha"
    hue = "gamma"

or from the command line (``minichain sim sweep selfish-mining --alpha 0.05:0.5:0.05
--gamma 0,0.5,1 --seeds 20``), where every option names a parameter and its value is a
comma-separated list of numbers and ranges. Parameters left out take the scenario's
default, so each row of the results carries every parameter of its run.

A mistake is a :class:`SpecError` naming the file and line (``tomllib`` keeps no
positions, so the line is found by scanning the text for the key under its table).
Ranges are computed in decimal (``0.05:0.5:0.05`` gives 0.15, not 0.15000000000000002).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from minichain.sim.sweep.scenarios import SCENARIOS, Param, Scenario, Value

MAX_RUNS = 1_000_000
TOP_KEYS = ("title", "scenario", "engine", "seeds", "metrics", "axes", "plot")
PLOT_KEYS = ("x", "hue", "metrics", "logx", "logy", "contour", "heatmap")


class SpecError(ValueError):
    """A sweep that cannot be run as written; ``str()`` names the file and line."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None) -> None:
        self.message, self.source, self.line = message, source, line
        where = source or ""
        if line is not None:
            where = f"{where}, line {line}" if where else f"line {line}"
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class PlotOptions:
    x: str | None = None
    hue: str | None = None
    metrics: tuple[str, ...] = ()
    logx: bool | None = None
    logy: bool | None = None
    contour: float | None = None
    heatmap: str | bool | None = None       # a metric, False for none, None for the scenario's


@dataclass(frozen=True)
class Spec:
    scenario: str
    axes: tuple[tuple[str, tuple[Value, ...]], ...]   # every parameter, in column order
    seeds: tuple[int, ...]
    asked: tuple[str, ...] | None = None              # the metrics the spec names (None: all)
    title: str = ""
    plot: PlotOptions = field(default_factory=PlotOptions)
    source: str | None = None

    @property
    def model(self) -> Scenario:
        return SCENARIOS[self.scenario]

    @property
    def shown(self) -> tuple[str, ...]:
        """The metrics printed and plotted: those asked for, or the scenario's headline."""
        return self.asked if self.asked is not None else self.model.headline

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics kept in the results: those asked for (with the counts a proportion
        is pooled from), or all of the scenario's."""
        if self.asked is None:
            return tuple(m.name for m in self.model.metrics)
        needed = {c for m in self.asked for c in (self.model.metric(m).proportion or ())}
        return tuple(m.name for m in self.model.metrics if m.name in self.asked or m.name in needed)

    @property
    def params(self) -> list[str]:
        return [name for name, _ in self.axes]

    @property
    def swept(self) -> list[str]:
        """The axes with more than one value (the ones a plot can show)."""
        return [name for name, values in self.axes if len(values) > 1]

    def values(self, name: str) -> tuple[Value, ...]:
        return dict(self.axes)[name]

    def points(self) -> list[dict[str, Value]]:
        names = self.params
        return [dict(zip(names, combo)) for combo in itertools.product(*(v for _, v in self.axes))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "title": self.title,
            "axes": {name: list(values) for name, values in self.axes},
            "seeds": list(self.seeds),
            "metrics": list(self.metrics),
        }

    def with_overrides(self, options: Iterable[tuple[str, str]], seeds: str | None = None,
                       metrics: str | None = None) -> "Spec":
        """This spec with some axes, the seeds or the metrics replaced (command-line text)."""
        axes = dict(self.axes) | _cli_axes(self.model, options)
        plot = self.plot
        for key in ("x", "hue"):                   # an axis narrowed to one value leaves the plot
            if getattr(plot, key) is not None and len(axes[getattr(plot, key)]) < 2:
                plot = replace(plot, **{key: None})
        try:
            return build(self.scenario, axes, seeds=_cli_seeds(seeds) if seeds is not None else self.seeds,
                         metrics=_cli_list(metrics) if metrics is not None else self.asked,
                         title=self.title, plot=plot, source=self.source)
        except _KeyedError as exc:
            raise SpecError(exc.message) from None


# -- building and checking -------------------------------------------------------------------


class _Where:
    """Turns a (table, key) into a line of the spec file, for error messages."""

    def __init__(self, source: str | None, text: str | None) -> None:
        self.source = source
        self.lines = text.splitlines() if text is not None else []

    def line(self, table: str | None, key: str | None) -> int | None:
        wanted = [f"{table}.{key}" if table and key else (key or table)]
        if table and key:
            wanted.append(table)             # an inline table: point at the table's own key
        for target in wanted:
            current = ""
            for i, raw in enumerate(self.lines, 1):
                s = raw.split("#", 1)[0].strip()
                header = re.match(r"^\[\s*([^\]]+?)\s*\]$", s)
                if header:
                    current = header.group(1).strip().strip('"')
                    if current == target:
                        return i
                    continue
                m = re.match(r'^"?([A-Za-z0-9_.\-]+)"?\s*=', s)
                if m:
                    full = f"{current}.{m.group(1)}" if current else m.group(1)
                    if full == target:
                        return i
        return None

    def error(self, message: str, table: str | None = None, key: str | None = None) -> SpecError:
        return SpecError(message, source=self.source, line=self.line(table, key))


def load(path: str) -> Spec:
    """Read a TOML spec file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror}", source=path) from None
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise SpecError("not a UTF-8 text file", source=path) from None
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)", str(exc))
        if where is None:
            raise SpecError(f"not valid TOML: {exc}", source=path) from None
        reason = str(exc)[:where.start()] + str(exc)[where.end():]
        raise SpecError(f"not valid TOML: {reason} (column {where.group(2)})", source=path,
                        line=int(where.group(1))) from None
    return from_dict(data, source=path, text=text)


def from_dict(data: dict[str, Any], *, source: str | None = None, text: str | None = None) -> Spec:
    """A spec from the parsed TOML (or the same shape written as a Python dict)."""
    where = _Where(source, text)
    for key in data:
        if key not in TOP_KEYS:
            raise where.error(f"unknown key {key!r} (a spec has: {', '.join(TOP_KEYS)})", None, key)
    axes_raw = data.get("axes", {})
    if not isinstance(axes_raw, dict):
        raise where.error("'axes' must be a table of parameter = values", None, "axes")
    axes_raw = dict(axes_raw)
    if "scenario" in data and "engine" in data:
        raise where.error("give either 'scenario' or 'engine', not both", None, "engine")
    if "engine" in data:
        scenario_name = "replicated"
        if "engine" in axes_raw:
            raise where.error("'engine' is given twice: at the top and in [axes]", "axes", "engine")
        axes_raw["engine"] = data["engine"]
    elif "scenario" in data:
        scenario_name = data["scenario"]
    else:
        raise where.error("the spec names no 'scenario' (or 'engine')")
    if not isinstance(scenario_name, str) or scenario_name not in SCENARIOS:
        raise where.error(f"unknown scenario {scenario_name!r} (known: {', '.join(SCENARIOS)})", None, "scenario")
    model = SCENARIOS[scenario_name]

    axes: dict[str, tuple[Value, ...]] = {}
    for name, raw in axes_raw.items():
        table, key = ("axes", name) if name != "engine" or "engine" not in data else (None, "engine")
        param = model.param(name)
        if param is None:
            known = ", ".join(p.name for p in model.params)
            raise where.error(f"unknown parameter {name!r} for {scenario_name} (known: {known})", table, key)
        try:
            axes[name] = parse_values(param, raw)
        except ValueError as exc:
            raise where.error(f"{name}: {exc}", table, key) from None

    try:
        seeds = parse_seeds(data.get("seeds", 1))
    except ValueError as exc:
        raise where.error(f"seeds: {exc}", None, "seeds") from None
    metrics = data.get("metrics")
    if metrics is not None and (not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics)):
        raise where.error("metrics must be a list of names", None, "metrics")
    title = data.get("title", "")
    if not isinstance(title, str):
        raise where.error("title must be a string", None, "title")
    plot = _plot_options(data.get("plot", {}), where)
    try:
        return build(scenario_name, axes, seeds=seeds, metrics=metrics, title=title, plot=plot, source=source)
    except _KeyedError as exc:
        raise where.error(exc.message, exc.table, exc.key) from None


class _KeyedError(ValueError):
    def __init__(self, message: str, table: str | None, key: str | None) -> None:
        super().__init__(message)
        self.message, self.table, self.key = message, table, key


def build(scenario: str, axes: dict[str, tuple[Value, ...]], *, seeds: Iterable[int] = (1,),
          metrics: Iterable[str] | None = None, title: str = "", plot: PlotOptions = PlotOptions(),
          source: str | None = None) -> Spec:
    """Complete the axes with the scenario's defaults and check metrics and plot choices."""
    model = SCENARIOS[scenario]
    ordered = [(name, tuple(values)) for name, values in axes.items()]
    ordered += [(p.name, (p.default,)) for p in model.params if p.name not in axes]
    names = {m.name for m in model.metrics}
    if metrics is not None:
        metrics = tuple(metrics)
        if not metrics:
            raise _KeyedError("metrics is empty: name at least one", None, "metrics")
        for m in metrics:
            if m not in names:
                raise _KeyedError(f"unknown metric {m!r} for {scenario} (known: {', '.join(sorted(names))})",
                                  None, "metrics")
        if len(set(metrics)) != len(metrics):
            raise _KeyedError("a metric is listed twice", None, "metrics")
    seeds = tuple(seeds)
    spec = Spec(scenario, tuple(ordered), seeds, metrics, title, plot, source)
    runs = len(seeds)
    for _, values in ordered:
        runs *= len(values)
    if runs > MAX_RUNS:
        raise _KeyedError(f"{runs:,} runs is more than the {MAX_RUNS:,} one sweep may hold", "axes", None)
    swept = spec.swept
    for key in ("x", "hue"):
        name = getattr(plot, key)
        if name is not None and name not in swept:
            raise _KeyedError(f"plot {key} = {name!r} is not an axis with several values "
                              f"(those are: {', '.join(swept) or 'none'})", "plot", key)
    for m in plot.metrics:
        if m not in spec.metrics:
            raise _KeyedError(f"plot metric {m!r} is not among the sweep's metrics", "plot", "metrics")
    if isinstance(plot.heatmap, str) and plot.heatmap not in spec.metrics:
        raise _KeyedError(f"plot heatmap {plot.heatmap!r} is not among the sweep's metrics", "plot", "heatmap")
    return spec


def _plot_options(raw: Any, where: _Where) -> PlotOptions:
    if not isinstance(raw, dict):
        raise where.error("'plot' must be a table", None, "plot")
    for key, value in raw.items():
        if key not in PLOT_KEYS:
            raise where.error(f"unknown plot option {key!r} (known: {', '.join(PLOT_KEYS)})", "plot", key)
        ok = {
            "x": isinstance(value, str), "hue": isinstance(value, str),
            "metrics": isinstance(value, list) and all(isinstance(m, str) for m in value),
            "logx": isinstance(value, bool), "logy": isinstance(value, bool),
            "heatmap": isinstance(value, (bool, str)),
            "contour": isinstance(value, (int, float)) and not isinstance(value, bool),
        }[key]
        if not ok:
            raise where.error(f"plot option {key!r} has the wrong type ({value!r})", "plot", key)
    return PlotOptions(
        x=raw.get("x"), hue=raw.get("hue"), metrics=tuple(raw.get("metrics", ())),
        logx=raw.get("logx"), logy=raw.get("logy"),
        contour=float(raw["contour"]) if "contour" in raw else None, heatmap=raw.get("heatmap"),
    )


# -- values, ranges and seeds ------------------------------------------------------------------


def parse_values(param: Param, raw: Any) -> tuple[Value, ...]:
    """An axis: a scalar, a list, or text of comma-separated values and ``start:stop[:step]``
    ranges; each value converted to the parameter's type and checked."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[Value] = []
    for item in items:
        if isinstance(item, bool):
            raise ValueError(f"expected {_kind(param)}, got {item!r}")
        if isinstance(item, str):
            pieces = [p.strip() for p in item.split(",")]
            if any(not p for p in pieces) and len(pieces) > 1:
                raise ValueError(f"an empty item in {item!r}")
            for piece in pieces:
                if param.kind is str:
                    if piece:
                        out.append(piece)
                elif ":" in piece:
                    out.extend(_range(piece, param.kind))
                elif piece:
                    out.append(_number(piece, param.kind))
        elif isinstance(item, (int, float)) and param.kind is not str:
            out.append(_coerce(item, param.kind))
        else:
            raise ValueError(f"expected {_kind(param)}, got {item!r}")
    if not out:
        raise ValueError("no values")
    seen: set = set()
    for v in out:
        if v in seen:
            raise ValueError(f"the value {v!r} appears twice")
        seen.add(v)
        if param.choices is not None:
            choices = param.choices()
            if v not in choices:
                raise ValueError(f"unknown {param.name} {v!r} (known: {', '.join(choices)})")
        problem = param.check(v)
        if problem:
            raise ValueError(problem)
    return tuple(out)


def _kind(param: Param) -> str:
    return {int: "integers", float: "numbers", str: "names"}[param.kind]


def _coerce(x: int | float, kind: type) -> int | float:
    if kind is float:
        return float(x)
    if isinstance(x, float):
        if not x.is_integer():
            raise ValueError(f"expected an integer, got {x!r}")
        return int(x)
    return x


def _number(text: str, kind: type) -> int | float:
    try:
        d = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if not d.is_finite():
        raise ValueError(f"expected a finite number, got {text!r}")
    return _from_decimal(d, kind, text)


def _from_decimal(d: Decimal, kind: type, text: str) -> int | float:
    if kind is int:
        if d != d.to_integral_value():
            raise ValueError(f"expected an integer, got {text!r}")
        return int(d)
    return float(d)


def _range(text: str, kind: type) -> list[int | float]:
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"a range is start:stop or start:stop:step, got {text!r}")
    try:
        start, stop = Decimal(parts[0]), Decimal(parts[1])
        step = Decimal(parts[2]) if len(parts) == 3 else Decimal(1)
    except InvalidOperation:
        raise ValueError(f"a range needs numbers, got {text!r}") from None
    if not all(d.is_finite() for d in (start, stop, step)):
        raise ValueError(f"a range needs finite numbers, got {text!r}")
    if step <= 0:
        raise ValueError(f"the step of {text!r} must be positive")
    if start >= stop:
        raise ValueError(f"the range {text!r} is empty (the stop is excluded, so it must exceed the start)")
    count = int((stop - start) / step)
    if start + count * step < stop:
        count += 1
    if count > MAX_RUNS:
        raise ValueError(f"the range {text!r} has {count:,} values")
    return [_from_decimal(start + i * step, kind, text) for i in range(count)]


def parse_seeds(raw: Any) -> tuple[int, ...]:
    """``N`` (seeds 1..N), a list of seeds, or a ``start:stop`` range (stop excluded)."""
    if isinstance(raw, bool):
        raise ValueError(f"expected a count or a list of seeds, got {raw!r}")
    if isinstance(raw, int):
        if raw < 1:
            raise ValueError(f"need at least one seed, got {raw}")
        return tuple(range(1, raw + 1))
    seed_param = Param("seed", int, 1, "", lambda v: None if v >= 0 else f"a seed must be >= 0, got {v}")
    try:
        return tuple(int(s) for s in parse_values(seed_param, raw))
    except ValueError as exc:
        raise ValueError(str(exc).replace("the value", "the seed")) from None


# -- the command line --------------------------------------------------------------------------


def from_cli(scenario: str, options: Iterable[tuple[str, str]], seeds: str | None = None,
             metrics: str | None = None) -> Spec:
    """An inline grid: ``selfish-mining`` with ``[("alpha", "0.05:0.5:0.05"), ...]``."""
    if scenario not in SCENARIOS:
        raise SpecError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)}; or give a .toml file)")
    model = SCENARIOS[scenario]
    try:
        return build(scenario, _cli_axes(model, options), seeds=_cli_seeds(seeds) if seeds is not None else (1,),
                     metrics=_cli_list(metrics) if metrics is not None else None)
    except _KeyedError as exc:
        raise SpecError(exc.message) from None


def _cli_axes(model: Scenario, options: Iterable[tuple[str, str]]) -> dict[str, tuple[Value, ...]]:
    axes: dict[str, tuple[Value, ...]] = {}
    for name, text in options:
        param = model.param(name)
        if param is None:
            known = ", ".join("--" + p.name.replace("_", "-") for p in model.params)
            raise SpecError(f"--{name.replace('_', '-')}: unknown parameter for {model.name} (known: {known})")
        try:
            axes[name] = parse_values(param, text)
        except ValueError as exc:
            raise SpecError(f"--{name.replace('_', '-')}: {exc}") from None
    return axes


def _cli_seeds(text: str) -> tuple[int, ...]:
    try:
        return parse_seeds(int(text) if re.fullmatch(r"\s*\d+\s*", text) else text)
    except ValueError as exc:
        raise SpecError(f"--seeds: {exc}") from None


def _cli_list(text: str | Iterable[str]) -> tuple[str, ...]:
    if isinstance(text, str):
        return tuple(m.strip() for m in text.split(",") if m.strip())
    return tuple(text)


def canonical(scenario: str, params: dict[str, Value], seed: int) -> str:
    """The key of one run: the same parameters and seed give the same text everywhere."""
    return json.dumps({"scenario": scenario, "params": params, "seed": seed}, sort_keys=True, separators=(",", ":"))


def run_seed(key: str) -> int:
    """The random seed a run is simulated with: a hash of its key (53 bits, exact in JSON and
    float64). Seed ``s`` of one point and seed ``s`` of the next draw unrelated numbers, so
    the points' errors are independent and about 95% of them should cover their closed
    form -- with the bare seed every point would replay the same random stream, and a lucky
    or unlucky stream would shift a whole curve at once."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 11



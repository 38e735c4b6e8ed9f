"""A sweep's results: the run journal that makes a sweep resumable, the tidy tables, and
the files written to the results directory.

``DIR/runs.jsonl`` is the journal: one JSON line per finished run, appended (and
flushed) the moment the run comes back, keyed by (scenario, parameters, seed) and
stamped with the code fingerprint. Starting a sweep reads it and runs only what is
missing, so an interrupted sweep resumes where it stopped, and a sweep with more seeds
or a longer axis reuses the runs it shares with an earlier one. A line cut short by a
kill is ignored; runs computed by other code are not reused.

From the journal, in the order of the grid (never the order runs finished):

* ``results.csv`` / ``results.json`` -- one row per (point, seed): the point's index,
  every parameter, the seed, the seed the run was simulated with (``run_seed``: a hash
  of the scenario, parameters and seed, see ``spec.run_seed``), the metrics. Pure functions of the spec: byte-identical
  whichever executor ran the sweep, and after a resume.
* ``aggregate.csv`` (and ``aggregate`` in ``results.json``) -- one row per point: the
  number of seeds and, per metric, the mean, the 95% interval (``stats.py``) and the
  closed forms where they exist.
* ``timings.csv`` -- per run: wall seconds, the worker's peak RSS (MB) and which worker;
  measurements of the machine, so not reproducible, and kept apart.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Iterable

from minichain.sim.sweep import stats
from minichain.sim.sweep.spec import Spec

JOURNAL = "runs.jsonl"


class Journal:
    """The finished runs of one code version, in memory and (with a directory) on disk."""

    def __init__(self, out_dir: str | None, code: str) -> None:
        self.out_dir = out_dir
        self.code = code
        self.entries: dict[str, dict[str, Any]] = {}
        self._fh = None
        if out_dir is None:
            return
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, JOURNAL)
        if os.path.exists(path):
            with open(path) as fh:
                for line in fh:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue                       # a line cut short by an interruption
                    if isinstance(entry, dict) and entry.get("code") == code and "key" in entry:
                        self.entries[entry["key"]] = entry
            self._rewrite()                            # drop torn lines and other code's runs
        self._fh = open(path, "a")

    def add(self, entry: dict[str, Any]) -> None:
        self.entries[entry["key"]] = entry
        if self._fh is not None:
            self._fh.write(json.dumps(entry, sort_keys=True) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def compact(self) -> None:
        """Rewrite the journal sorted by key (one line per run, this code's only)."""
        self.close()
        if self.out_dir is not None:
            self._rewrite()

    def _rewrite(self) -> None:
        assert self.out_dir is not None
        path = os.path.join(self.out_dir, JOURNAL)
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            for key in sorted(self.entries):
                fh.write(json.dumps(self.entries[key], sort_keys=True) + "\n")
        os.replace(tmp, path)


# -- the tables ----------------------------------------------------------------------------------


def rows(spec: Spec, runs: list[tuple[int, dict[str, Any], int, dict[str, Any]]],
         run_seeds: list[int]) -> list[dict[str, Any]]:
    """One row per (point, seed): ``runs`` is [(point index, params, seed, metrics)] in grid
    order, ``run_seeds`` the seeds they were simulated with (``spec.run_seed``)."""
    kept = spec.metrics
    return [{"point": i, **params, "seed": seed, "run_seed": rs, **{m: metrics.get(m) for m in kept}}
            for (i, params, seed, metrics), rs in zip(runs, run_seeds)]


def aggregate(spec: Spec, table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per point: seeds, and per metric mean, 95% interval and closed forms."""
    model = spec.model
    by_point: dict[int, list[dict[str, Any]]] = {}
    for row in table:
        by_point.setdefault(row["point"], []).append(row)
    out = []
    for i, group in sorted(by_point.items()):
        params = {name: group[0][name] for name in spec.params}
        agg: dict[str, Any] = {"point": i, **params, "seeds": len(group)}
        for name in spec.metrics:
            metric = model.metric(name)
            assert metric is not None
            values = [r[name] for r in group if r[name] is not None]
            if metric.proportion is not None:
                num, den = metric.proportion
                mean, lo, hi = stats.proportion_interval(sum(r[num] for r in group), sum(r[den] for r in group))
            elif values:
                mean, lo, hi = stats.mean_interval([float(v) for v in values])
            else:
                mean = lo = hi = None
            agg[f"{name}_mean"], agg[f"{name}_ci_lo"], agg[f"{name}_ci_hi"] = mean, lo, hi
            for form in metric.closed:
                agg[f"{name}_{form.name}"] = closed_value(form, params)
        out.append(agg)
    return out


def closed_value(form: Any, params: dict[str, Any]) -> float | None:
    try:
        value = form.fn(params)
    except (ValueError, ZeroDivisionError):
        return None
    return None if value is None else float(value)


def timings(runs: list[tuple[int, dict[str, Any], int, dict[str, Any]]],
            entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"point": i, "seed": seed, "wall_s": e["wall_s"], "peak_rss_mb": e["peak_rss_mb"], "worker": e["worker"]}
            for (i, _, seed, _), e in zip(runs, entries)]


# -- files -----------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_csv(table: list[dict[str, Any]], columns: Iterable[str] | None = None) -> str:
    columns = list(columns if columns is not None else (table[0] if table else []))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in table:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def to_json(spec: Spec, table: list[dict[str, Any]], agg: list[dict[str, Any]]) -> str:
    return json.dumps({"spec": spec.to_dict(), "rows": table, "aggregate": agg}, indent=1, allow_nan=False) + "\n"


def write(out_dir: str, spec: Spec, table: list[dict[str, Any]], agg: list[dict[str, Any]],
          times: list[dict[str, Any]]) -> list[str]:
    files = {
        "results.csv": to_csv(table),
        "results.json": to_json(spec, table, agg),
        "aggregate.csv": to_csv(agg),
        "timings.csv": to_csv(times),
    }
    written = []
    for name, text in files.items():
        path = os.path.join(out_dir, name)
        with open(path, "w") as fh:
            fh.write(text)
        written.append(path)
    return written

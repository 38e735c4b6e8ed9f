"""Sweeps: parameter grids over the simulator, run in parallel, resumable, as tidy tables.

A *point* is one combination of parameter values; a *run* is a point with a seed, a pure
function of both. A sweep runs every (point, seed) of a spec (``spec.py``: TOML files in
``docs/sweeps/`` or an inline grid) on an executor (``execute.py``: this process, local
processes, or a Dask cluster), keeps each finished run in a journal so that it is never
computed twice (``results.py``), and makes tidy tables of them: one row per (point, seed)
and one aggregate row per point with means and 95% intervals (``stats.py``), beside the
closed forms of ``sim/analytic.py``. ``plots.py`` draws them; ``scenarios.py`` says what
can be swept.

From Python (pandas is the ``sweep`` extra; the command needs nothing more than the
default install)::

    from minichain.sim import sweep

    df = sweep.run("docs/sweeps/selfish-mining.toml", workers=2)          # one row per (point, seed)
    agg = sweep.run({"scenario": "double-spend", "axes": {"q": [0.1, 0.3], "z": "0:7"}, "seeds": 5},
                    aggregate=True)                                        # one row per point

and from the command line, ``minichain sim sweep SPEC.toml --out DIR`` (``cli/sim.py``).
"""

from __future__ import annotations

import os
from typing import Any

from minichain.sim.sweep.execute import SweepError
from minichain.sim.sweep.runner import Progress, SweepResult, sweep
from minichain.sim.sweep.scenarios import SCENARIOS
from minichain.sim.sweep.spec import Spec, SpecError, from_cli, from_dict, load


def as_spec(spec: "Spec | str | os.PathLike | dict[str, Any]") -> Spec:
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, dict):
        return from_dict(spec)
    return load(os.fspath(spec))


def run(spec: "Spec | str | os.PathLike | dict[str, Any]", out: str | None = None, *, workers: int = 1,
        scheduler: str | None = None, progress: Progress | None = None, aggregate: bool = False,
        plots: bool = True):
    """Run a sweep and return a pandas DataFrame: one row per (point, seed), or with
    ``aggregate=True`` one row per point (means, 95% intervals, closed forms). With
    ``out``, the results directory is written (and reused: runs already there are not
    computed again) with the plots unless ``plots=False``."""
    try:
        import pandas as pd
    except ImportError:
        raise SweepError("the DataFrame needs pandas: pip install 'minichain[sweep]'") from None
    result = sweep(as_spec(spec), out, workers=workers, scheduler=scheduler, progress=progress, plots=plots)
    return pd.DataFrame(result.aggregate if aggregate else result.rows)


__all__ = ["SCENARIOS", "Spec", "SpecError", "SweepError", "SweepResult", "as_spec", "from_cli", "from_dict", "load",
           "run", "sweep"]

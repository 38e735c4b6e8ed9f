"""``minichain bench``: run the benchmarks of the source tree (``benchmarks/``).

The benchmarks are a top-level package of the repository, not part of the installed
``minichain`` package (pyproject installs ``minichain*`` only). So this command finds
them when it runs from a source checkout -- the current directory, or the checkout an
editable install points at -- and otherwise says how to run them.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys

import click

import minichain
from minichain.cli.common import CommandError

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def _checkout_roots() -> list[str]:
    """Directories that may hold ``benchmarks/``: the current one, and the one above the
    imported ``minichain`` package (a source checkout or an editable install)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(minichain.__file__)))
    return [os.getcwd(), here]


def load_benchmark(name: str):
    """Import ``benchmarks.<name>``, looking in a source checkout if need be; raise a
    :class:`CommandError` that explains what to do when it cannot be found."""
    module = f"benchmarks.{name}"
    for attempt in range(2):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise CommandError(f"there is no {module} benchmark in this source tree yet") from None
            if exc.name != "benchmarks":
                raise CommandError(f"the {name} benchmark needs the module {exc.name!r}, which is not installed "
                                   f"(or not built yet): {exc}") from None
            if attempt == 0:
                roots = [r for r in _checkout_roots() if os.path.isfile(os.path.join(r, "benchmarks", "__init__.py"))]
                if roots:
                    sys.path.insert(0, roots[0])
                    continue
            raise CommandError(
                "the benchmarks are not part of the installed package; they live in the source tree. "
                f"From a checkout of minichain run: python -m {module}  (or run 'minichain bench {name}' "
                "from the checkout's top directory)"
            ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _run(name: str, args: tuple[str, ...]) -> None:
    mod = load_benchmark(name)
    entry = getattr(mod, "main", None) or getattr(mod, "run", None)
    if entry is None:
        raise CommandError(f"benchmarks.{name} has no main() to run; try python -m benchmarks.{name}")
    if inspect.signature(entry).parameters:
        entry(list(args))
        return
    saved = sys.argv  # a main() without parameters parses sys.argv itself
    sys.argv = [f"minichain bench {name}", *args]
    try:
        entry()
    finally:
        sys.argv = saved


@click.group()
def bench() -> None:
    """Measure this machine: mining kernel and signature speed.

    Options after the benchmark's name go to it unchanged; to see the benchmark's own
    options, put them after '--': minichain bench crypto -- --help.

    \b
    Example:
      minichain bench crypto --budget 0.5
      minichain bench mine --help
    """


@bench.command("mine", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_mine(args):
    """Hash rate of the SHA-256d mining kernel (benchmarks/mining.py).

    \b
    Example:
      minichain bench mine
    """
    _run("mining", args)


@bench.command("crypto", context_settings=PASS_THROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_crypto(args):
    """Signing and verification rates of the secp256k1 backends (benchmarks/crypto.py).

    \b
    Example:
      minichain bench crypto --budget 0.5
    """
    _run("crypto", args)

"""Build of minichain's two compiled extensions (sources in cython_ext/):

* ``minichain._sha256d``, the proof-of-work kernel: a Cython binding over C written
  from FIPS 180-4;
* ``minichain.sim._simcore``, the simulator's event queue and the network's log-normal
  relay loop in C (the same events, order and random draws as the Python code).

pyproject.toml holds the package metadata; this file only declares the extensions.

Both are optional. If one cannot be built (no C compiler, Cython missing, a compile
error) the install still succeeds with a one-line warning naming it, and its Python
twin takes over: minichain.mining.kernel's pure-Python kernel (it warns again at
import) and minichain.sim.events' pure-Python queue (slower, the same results).
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_SOURCES = [
    "cython_ext/sha256_portable.c",
    "cython_ext/sha256_shani.c",
    "cython_ext/sha256_simd.c",
    "cython_ext/cpu.c",
]
HEADERS = [
    "cython_ext/sha256d.h",
    "cython_ext/sha256_consts.h",
    "cython_ext/sha256_ops.h",
    "cython_ext/sha256_lanes.h",
]


FALLBACK = {
    "minichain._sha256d": "mining will use the slow pure-Python kernel",
    "minichain.sim._simcore": "the simulator will use its slower pure-Python event queue",
}


class OptionalBuildExt(build_ext):
    """build_ext that Cythonizes lazily and turns any build failure into a warning."""

    def run(self) -> None:
        try:
            from Cython.Build import cythonize

            # cythonize returns distutils Extensions; keep setuptools' own objects and
            # only take over the generated C sources.
            for ext in self.extensions:
                pyx = [src for src in ext.sources if src.endswith(".pyx")]
                other = [src for src in ext.sources if not src.endswith(".pyx")]
                (generated,) = cythonize(
                    [Extension(ext.name, pyx, include_dirs=ext.include_dirs)],
                    build_dir="build/cython",
                    compiler_directives={"language_level": 3},
                    quiet=True,
                )
                ext.sources = list(generated.sources) + other
            super().run()
        except Exception as exc:  # noqa: BLE001 - any failure means "no extension"
            for ext in self.extensions:
                self._warn(ext, exc)

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "msvc":
            flags = ["/O2"]
        else:
            flags = ["-O3"]
        for ext in self.extensions:
            ext.extra_compile_args = flags + list(ext.extra_compile_args or [])
        super().build_extensions()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            self._warn(ext, exc)

    def initialize_options(self) -> None:
        super().initialize_options()
        self._warned: set[str] = set()      # extensions already warned about

    def _warn(self, ext: Extension, exc: BaseException) -> None:
        if ext.name in self._warned:  # one line each, even when a later step trips over the missing file
            return
        self._warned.add(ext.name)
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"WARNING: {ext.name} not built ({type(exc).__name__}: {reason[:200]}); {FALLBACK[ext.name]}",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "minichain._sha256d",
            sources=["cython_ext/_sha256d.pyx", *C_SOURCES],
            depends=HEADERS,
            include_dirs=["cython_ext"],
        ),
        # The latency draws must round exactly as Python's float arithmetic does: no
        # fused multiply-add (network.py checks the numbers at import all the same).
        Extension("minichain.sim._simcore", sources=["cython_ext/_simcore.pyx"],
                  extra_compile_args=["-ffp-contract=off"] if sys.platform != "win32" else []),
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)

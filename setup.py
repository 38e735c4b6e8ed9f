"""Build of minichain's compiled proof-of-work kernel, the extension minichain._sha256d.

pyproject.toml holds the package metadata; this file only declares the extension
(cython_ext/: a Cython binding over C written from FIPS 180-4).

The extension is optional. If it cannot be built (no C compiler, Cython missing, a
compile error) the install still succeeds with a one-line warning, and
minichain.mining.kernel falls back to pure Python, warning again at import.
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
            self._warn(exc)

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
            self._warn(exc)

    _warned = False

    def _warn(self, exc: BaseException) -> None:
        if self._warned:  # one line, even when a later step trips over the missing file
            return
        self._warned = True
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"WARNING: minichain._sha256d not built ({type(exc).__name__}: {reason[:200]}); "
            "mining will use the slow pure-Python kernel",
            file=sys.stderr,
        )


setup(
    ext_modules=[
        Extension(
            "minichain._sha256d",
            sources=["cython_ext/_sha256d.pyx", *C_SOURCES],
            depends=HEADERS,
            include_dirs=["cython_ext"],
        )
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)

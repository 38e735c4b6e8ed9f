"""Another revision's code beside this checkout's, for a baseline measured in the same run."""

from __future__ import annotations

import filecmp
import glob
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export_tree(ref: str, into: str) -> str:
    """``git archive`` of ``ref`` into a directory, with this tree's compiled modules copied
    in: the kernel always (it is not what is measured; without it regtest mines in pure
    Python), the simulator's compiled core only where ``ref``'s source of it is this
    tree's (a different one would have to be built; see ``simcore_missing``)."""
    data = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=data, check=True)
    for built in glob.glob(os.path.join(ROOT, "minichain", "_sha256d*.so")):
        shutil.copy(built, os.path.join(into, "minichain"))
    source = os.path.join("cython_ext", "_simcore.pyx")
    theirs = os.path.join(into, source)
    if os.path.exists(theirs) and filecmp.cmp(os.path.join(ROOT, source), theirs, shallow=False):
        for built in glob.glob(os.path.join(ROOT, "minichain", "sim", "_simcore*.so")):
            shutil.copy(built, os.path.join(into, "minichain", "sim"))
    return into


def simcore_missing(tree: str) -> bool:
    """Does ``tree`` have the simulator's compiled core in source but not built? (Its
    simulator would then time itself on the slower Python queue.)"""
    return (os.path.exists(os.path.join(tree, "cython_ext", "_simcore.pyx"))
            and not glob.glob(os.path.join(tree, "minichain", "sim", "_simcore*.so")))

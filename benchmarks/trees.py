"""Another revision's code beside this checkout's, for a baseline measured in the same run."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export_tree(ref: str, into: str) -> str:
    """``git archive`` of ``ref`` into a directory, with this tree's compiled kernel copied
    in (the kernel is not what is measured; without it regtest mines in pure Python)."""
    data = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=data, check=True)
    for built in glob.glob(os.path.join(ROOT, "minichain", "_sha256d*.so")):
        shutil.copy(built, os.path.join(into, "minichain"))
    return into

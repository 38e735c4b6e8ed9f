"""Regenerate (or check) every command output quoted in ``docs/``.

Not a command group: a maintenance entry point, ``python -m minichain.cli.docs``. Each
Markdown file in ``docs/`` may hold blocks like

    <!-- run: minichain sim double-spend --q 0.1 --z 0-3 --trials 2000 -->
    ...generated...
    <!-- end -->

The generated part is the command (so it is always shown next to its numbers) and its
standard output: in a ``text`` code block for ``run:``, or inserted as Markdown for
``run-md:`` (a command printing a Markdown table). Commands run in this process through
click's test runner, so the same seeds give the same bytes; anything a command writes to
stderr (progress, wall time) is left out.

    python -m minichain.cli.docs            # rewrite the blocks from fresh runs
    python -m minichain.cli.docs --check    # exit 1 and name the blocks that drifted

``tests/test_docs.py`` runs the check, with ``--out`` directories sent to a temporary
directory so that the test leaves the committed plots alone.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from dataclasses import dataclass

BLOCK = re.compile(r"<!-- (run|run-md): (.+?) -->\n(.*?)<!-- end -->", re.S)
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs")


class DocCommandError(RuntimeError):
    pass


@dataclass(frozen=True)
class Block:
    path: str
    kind: str          # "run" or "run-md"
    command: str
    body: str


def blocks(path: str) -> list[Block]:
    with open(path) as fh:
        text = fh.read()
    return [Block(path, m.group(1), m.group(2).strip(), m.group(3)) for m in BLOCK.finditer(text)]


def run_command(command: str, out_dir: str | None = None) -> str:
    """Run one ``minichain ...`` command in-process and return its stdout."""
    from click.testing import CliRunner

    from minichain.cli import main

    args = shlex.split(command)
    if not args or args[0] != "minichain":
        raise DocCommandError(f"only 'minichain ...' commands can be run from the docs, not {command!r}")
    args = args[1:]
    if out_dir is not None and "--out" in args:
        args[args.index("--out") + 1] = out_dir
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    if result.exit_code != 0:
        raise DocCommandError(f"{command!r} exited with {result.exit_code}:\n{result.output}")
    return "\n".join(line.rstrip() for line in result.stdout.rstrip("\n").split("\n")) + "\n"


def render(kind: str, command: str, output: str) -> str:
    if kind == "run":
        return f"```text\n$ {command}\n{output}```\n"
    return f"`$ {command}`\n\n{output}"


def regenerate(path: str, out_dir: str | None = None) -> tuple[str, list[str]]:
    """The file's text with every block re-run, and the commands whose output changed."""
    with open(path) as fh:
        text = fh.read()
    drifted: list[str] = []

    def replace(m: re.Match) -> str:
        kind, command, body = m.group(1), m.group(2).strip(), m.group(3)
        fresh = render(kind, command, run_command(command, out_dir))
        if fresh != body:
            drifted.append(command)
        return f"<!-- {kind}: {command} -->\n{fresh}<!-- end -->"

    return BLOCK.sub(replace, text), drifted


def doc_files(docs: str = DOCS) -> list[str]:
    return sorted(os.path.join(docs, f) for f in os.listdir(docs) if f.endswith(".md"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minichain.cli.docs", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="report drift instead of rewriting")
    parser.add_argument("files", nargs="*", help="Markdown files (default: docs/*.md)")
    args = parser.parse_args(argv)
    # Commands name paths relative to the repository (e.g. --out docs/img).
    os.chdir(os.path.dirname(DOCS))
    status = 0
    scratch = tempfile.TemporaryDirectory() if args.check else None
    for path in args.files or doc_files():
        # A check writes the plots of ``--out`` commands to a scratch directory.
        text, drifted = regenerate(path, scratch.name if scratch else None)
        for command in drifted:
            print(f"{os.path.relpath(path)}: output of '{command}' {'drifted' if args.check else 'updated'}")
        if drifted and args.check:
            status = 1
        elif drifted:
            with open(path, "w") as fh:
                fh.write(text)
    return status


if __name__ == "__main__":
    sys.exit(main())

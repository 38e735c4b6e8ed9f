"""The docs quote command outputs; re-run every command and fail if an output drifted.

Each ``<!-- run: ... -->`` / ``<!-- run-md: ... -->`` block in ``docs/*.md`` holds a
command and what it printed (``minichain/cli/docs.py``). A change to an engine, a
scenario or a metric that changes a number in the docs fails here until the docs are
regenerated with ``python -m minichain.cli.docs``. Commands that write plots (``--out``)
write them to a temporary directory, so the test leaves ``docs/img`` alone.
"""

import os
import re

import pytest

from minichain.cli import docs

DOC_FILES = docs.doc_files()
BLOCKS = [b for path in DOC_FILES for b in docs.blocks(path)]


def test_the_guide_and_the_comparison_quote_commands():
    names = {os.path.basename(b.path) for b in BLOCKS}
    assert {"guide.md", "comparison.md"} <= names
    assert any("minichain sim compare" in b.command and "--out docs/img" in b.command
               for b in BLOCKS if b.path.endswith("comparison.md"))


@pytest.mark.parametrize("path", DOC_FILES, ids=os.path.basename)
def test_every_quoted_output_is_what_the_command_prints_now(path, tmp_path):
    text, drifted = docs.regenerate(path, out_dir=str(tmp_path))
    assert not drifted, (
        f"{os.path.basename(path)}: the output of {drifted} changed; "
        "run 'python -m minichain.cli.docs' and review the diff"
    )
    with open(path) as fh:
        assert fh.read() == text


def test_every_block_shows_its_command_next_to_its_output():
    for b in BLOCKS:
        assert f"$ {b.command}" in b.body, f"{b.path}: the command is not shown with its output"
        assert b.body.strip() != f"`$ {b.command}`", f"{b.path}: empty output for {b.command}"


def test_the_plots_the_comparison_shows_are_the_ones_its_command_draws():
    comparison = os.path.join(docs.DOCS, "comparison.md")
    with open(comparison) as fh:
        images = re.findall(r"\]\((img/[^)]+\.png)\)", fh.read())
    assert sorted(images) == ["img/double_spend.png", "img/fork_tree.png", "img/messages_per_decision.png",
                              "img/partition_commits.png"]
    for image in images:
        assert os.path.getsize(os.path.join(docs.DOCS, image)) > 10_000


def test_only_minichain_commands_are_run():
    with pytest.raises(docs.DocCommandError, match="only 'minichain"):
        docs.run_command("rm -rf /")


def test_every_file_the_docs_point_at_exists():
    root = os.path.dirname(docs.DOCS)
    for path in DOC_FILES:
        with open(path) as fh:
            text = fh.read()
        for ref in set(re.findall(r"`((?:minichain|tests)/[\w/]+\.py)`", text)):
            assert os.path.exists(os.path.join(root, ref)), f"{os.path.basename(path)} points at {ref}, which is gone"

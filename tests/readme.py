"""The README's shell examples, for the tests that run them exactly as written."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_block(section: str) -> str:
    """The first ```sh block after the heading ``section``."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    start = text.index(section)
    match = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    assert match, f"the README section {section!r} has no sh block"
    return match.group(1)

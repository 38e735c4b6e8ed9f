"""How the supervisor tells its caller what it is doing, without knowing who listens.

The command line shows it with rich (a progress bar per phase); tests and the demo can
pass their own observer or the silent default.
"""

from __future__ import annotations


class Observer:
    """Silent by default; override what you want to show."""

    def phase(self, text: str, total: int | None = None) -> None:
        """A new step begins (``total`` units of work, if countable)."""

    def progress(self, done: int, detail: str = "") -> None:
        """``done`` units of the current phase are finished."""

    def note(self, text: str) -> None:
        """A line worth keeping on screen."""

    def warn(self, text: str) -> None:
        """Something the user should know about, that did not stop the command."""

    def finish(self) -> None:
        """The command is over (close any live display)."""


class Recorder(Observer):
    """Keeps every event as text: for tests."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def phase(self, text: str, total: int | None = None) -> None:
        self.events.append(f"phase: {text}")

    def note(self, text: str) -> None:
        self.events.append(f"note: {text}")

    def warn(self, text: str) -> None:
        self.events.append(f"warn: {text}")

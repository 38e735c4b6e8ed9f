"""Actions: the values a sans-IO state machine returns instead of doing IO.

The simulator's engines (``sim/engine.py`` documents their meaning there) and the node's
peer protocol (``node/protocol.py``) speak this one vocabulary, so a simulated Nakamoto
node hands the protocol's ``Send``s to the simulator unchanged, and the real node's IO
shell carries out the very same values over its sockets.
"""

from __future__ import annotations

from typing import Any, Hashable, Union


class _Action:
    """Base of the actions: small values compared and hashed by their fields.

    Plain ``__slots__`` classes rather than frozen dataclasses: a large Nakamoto run
    builds millions of Sends and Decides, and a frozen dataclass's ``__init__`` costs
    one ``object.__setattr__`` per field. Treat them as immutable all the same.
    """

    __slots__ = ()

    def _fields(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._fields() == other._fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._fields()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"


class Send(_Action):
    __slots__ = ("dst", "msg")

    def __init__(self, dst: int, msg: Any) -> None:
        self.dst = dst
        self.msg = msg


class Broadcast(_Action):
    __slots__ = ("msg", "include_self")

    def __init__(self, msg: Any, include_self: bool = False) -> None:
        self.msg = msg
        self.include_self = include_self


class SetTimer(_Action):
    __slots__ = ("name", "delay")

    def __init__(self, name: Hashable, delay: float) -> None:
        self.name = name
        self.delay = delay


class CancelTimer(_Action):
    __slots__ = ("name",)

    def __init__(self, name: Hashable) -> None:
        self.name = name


class Decide(_Action):
    __slots__ = ("slot", "value")

    def __init__(self, slot: int, value: Any) -> None:
        self.slot = slot
        self.value = value


Action = Union[Send, Broadcast, SetTimer, CancelTimer, Decide]

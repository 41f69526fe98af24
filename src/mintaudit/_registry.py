"""One small registry type: names to entries (a thing with its metadata), in registration order.

Every extension point (attacks, detector kinds, data sets, zoo models) is one of these, so they
refuse a duplicate name and list the registered names the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from typing import Any, Generic, TypeVar, overload

from mintaudit.errors import ConfigError

__all__ = ["Names", "Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered name -> entry table that refuses duplicates.

    Args:
        what: what an entry is, for messages (``"attack"``, ``"data set"``...).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a name already taken is refused (ConfigError)."""
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ConfigError(f"{self.what} name must be a non-empty string without surrounding spaces; given {name!r}")
        if name in self._entries:
            raise ConfigError(
                f"{self.what} {name!r} is already registered; pick another name "
                f"(registered: {', '.join(self._entries)})"
            )
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> T:
        """Unregister ``name`` and return its entry (for plug-ins and tests)."""
        if name not in self._entries:
            raise ConfigError(self.unknown_message(name))
        return self._entries.pop(name)

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return f"unknown {self.what} {name!r}; {hint}registered: {', '.join(self._entries)}"

    def get(self, name: str) -> T:
        """The entry of ``name``; an unknown name raises a ConfigError listing the registered ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(self.unknown_message(name)) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


class Names(Sequence[str]):
    """A live, read-only tuple of a registry's names (what ``ATTACKS``, ``MODEL_NAMES``... are)."""

    def __init__(self, registry: Registry[Any]) -> None:
        self._registry = registry

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[str, ...]: ...
    def __getitem__(self, i: int | slice) -> str | tuple[str, ...]:
        return self._registry.names()[i]

    def __len__(self) -> int:
        return len(self._registry)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Names, tuple, list)):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(self._registry.names())

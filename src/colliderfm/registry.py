"""A name -> object table, the one shape of every registry in colliderfm (a leaf: imports nothing).

Models, pretraining objectives, tokenizers, data formats and checkpoint builders each keep one
:class:`Registry`. The modules that define entries register them with :meth:`Registry.register`
when their package is imported (a package's ``__init__`` imports its members); code that only
looks a name up never imports an entry's module itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Named entries of one kind.

    Args:
        kind: what the entries are, for error messages (e.g. ``"objective"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that adds ``obj`` under ``name`` (a second entry of one name is a bug).

        Args:
            name: the entry's name.

        Returns:
            Decorator returning its argument unchanged.
        """

        def deco(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            return obj

        return deco

    def get(self, name: str, error: Callable[[str], Exception] = KeyError) -> T:
        """The entry called ``name``.

        Args:
            name: entry name.
            error: exception type raised for unknown names (gets a one-line message).

        Returns:
            The registered object.
        """
        if name not in self._entries:
            raise error(f"unknown {self.kind} '{name}' (valid: {', '.join(self.names())})")
        return self._entries[name]

    def names(self) -> list[str]:
        """Registered names, sorted.

        Returns:
            The names.
        """
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs in name order.

        Returns:
            The pairs.
        """
        return [(n, self._entries[n]) for n in self.names()]

"""Name -> component registries. Datasets, models, losses, schemes, fusions and metrics all use one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from gensemble.errors import UnknownNameError, shown

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to components that fails loudly, listing what it knows."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._docs: dict[str, str] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, doc: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._docs[name] = doc or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            return obj

        return decorator

    def alias(self, old: str, new: str) -> None:
        """Let a renamed component still be found by its old name (saved runs and configs keep
        working); only the new name is listed."""
        self._aliases[old] = new

    def canonical(self, name: str) -> str:
        """The name a component goes by now (`name` itself unless it is an old alias)."""
        return self._aliases.get(name, name)

    def get(self, name: str) -> T:
        name = self.canonical(name)
        if name not in self._items:
            # Prefix-style names (folder:PATH, classifier:DATASET) register their prefix.
            prefix = name.split(":", 1)[0] + ":" if ":" in name else None
            if prefix and prefix in self._items:
                return self._items[prefix]
            known = ", ".join(sorted(self._items))
            raise UnknownNameError(f"unknown {self.kind} {shown(name)}; known {self.kind}s: {known}")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return self.canonical(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def names(self) -> list[str]:
        return sorted(self._items)

    def registered(self) -> list[str]:
        """Names in the order they were registered (which tables use for their columns)."""
        return list(self._items)

    def describe(self) -> list[tuple[str, str]]:
        """(name, one-line description) pairs, for `gensemble list`."""
        return [(n, self._docs[n]) for n in self.names()]

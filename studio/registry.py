"""A tiny named registry, the one source of truth for methods and stages.

Modules register their class at import (`@METHODS.register("lora")`); the recipe parser, the
UI's pickers and the registry-driven tests all read the same table. Lookups of unknown names
raise `StudioError` listing the names that exist.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from studio.errors import StudioError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            setattr(obj, "name", name)
            return obj

        return deco

    def get(self, name: str, field: str | None = None) -> T:
        try:
            return self._items[name]
        except KeyError:
            where = field or self.kind
            choices = ', '.join(self.names())
            raise StudioError(
                f"Unknown {self.kind} {name!r} in '{where}': choose one of {choices}.",
                field=field, key="registry.unknown", kind=self.kind, name=name, where=where, choices=choices,
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __contains__(self, name: str) -> bool:
        return name in self._items

"""A tiny name → factory registry shared by models, data modules, losses, optimisers, schedules."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from quantsurvey.errors import ConfigError


class Registry:
    """Maps names to factories; unknown names fail with the allowed ones and a close match."""

    def __init__(self, kind: str, key: str):
        self.kind = kind  # e.g. "model"
        self.key = key  # the config key that selects it, e.g. "model.name"
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = fn
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._items:
            raise ConfigError(unknown_value_message(self.key, name, self.names()))
        return self._items[name]

    def create(self, name: str, params_key: str | None = None, /, **kwargs: Any) -> Any:
        """Build `name` with `kwargs`; an unexpected keyword names the allowed ones."""
        factory = self.get(name)
        check_kwargs(factory, kwargs, params_key or self.key)
        return factory(**kwargs)


def unknown_value_message(key: str, value: Any, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(value), allowed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}.{hint}"


def check_kwargs(factory: Callable[..., Any], kwargs: dict[str, Any], key: str) -> None:
    """Fail with one message if `kwargs` holds a name that `factory` does not take."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    for name in kwargs:
        if name not in allowed:
            raise ConfigError(
                f"{key}: unknown parameter {name!r} for {factory.__name__}; "
                f"allowed: {', '.join(allowed)}."
                + (
                    f" Did you mean {m[0]!r}?"
                    if (m := difflib.get_close_matches(name, allowed, n=1))
                    else ""
                )
            )

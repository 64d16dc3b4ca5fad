"""Name -> class registry: :func:`create`, :func:`methods`, :func:`get_method`.

Every method registers under one canonical name and optional aliases, so switching
method in a training script changes one string.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

from .base import Balancer, TaskSpec

__all__ = ["register", "create", "methods", "get_method"]

_METHODS: dict[str, type[Balancer]] = {}
_ALIASES: dict[str, str] = {}

B = TypeVar("B", bound=type[Balancer])


def register(name: str, *aliases: str) -> Callable[[B], B]:
    """Class decorator: register a :class:`Balancer` under ``name`` and ``aliases``.

    Example:
        >>> from taskbalance.registry import register, create
        >>> from taskbalance.weighting.equal import Equal
        >>> @register("my-equal")
        ... class MyEqual(Equal):
        ...     '''Equal weighting under another name.'''
        >>> type(create("my-equal", tasks=2)).__name__
        'MyEqual'
    """

    def decorate(cls: B) -> B:
        for key in (name, *aliases):
            if key in _METHODS or key in _ALIASES:
                raise ValueError(f"method name {key!r} is already registered")
        cls.name = name
        _METHODS[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return decorate


def get_method(name: str) -> type[Balancer]:
    """The class registered under ``name`` (or an alias); case-insensitive.

    Example:
        >>> get_method("kendall").__name__
        'UncertaintyWeighting'
    """
    key = name.lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _METHODS:
        close = difflib.get_close_matches(key, [*_METHODS, *_ALIASES], n=3)
        named = [f"{c!r} (an alias of {_ALIASES[c]!r})" if c in _ALIASES else repr(c) for c in close]
        hint = f" Did you mean {', '.join(named)}?" if close else ""
        raise ValueError(f"unknown method {name!r}.{hint} Available: {', '.join(methods())}")
    return _METHODS[key]


def create(name: str, tasks: TaskSpec, **hyper: Any) -> Balancer:
    """Build the method registered as ``name`` for ``tasks`` with its hyper-parameters.

    Example:
        >>> import taskbalance as tb
        >>> tb.create("dwa", tasks=["a", "b"], temperature=2.0)
        DWA(tasks=['a', 'b'], temperature=2.0, window='epoch')

    A keyword the method does not take is refused with the method's options and the
    closest match (``normalisation`` -> ``normalization``).
    """
    cls = get_method(name)
    valid = options(cls)
    unknown = [k for k in hyper if k not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise TypeError(
            f"{cls.name or cls.__name__} has no option {unknown[0]!r}{hint} "
            f"Its options: {', '.join(sorted(valid))}"
        )
    return cls(tasks, **hyper)


def options(cls: type[Balancer]) -> list[str]:
    """The keyword arguments a method's constructor takes (its own and its bases')."""
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            skip = p.name in ("self", "tasks") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            if not skip and p.name not in names:
                names.append(p.name)
    return names


def methods(kind: str | None = None) -> list[str]:
    """Sorted canonical names of the registered methods (of one ``kind`` if given).

    Example:
        >>> "uw" in methods("loss")
        True
    """
    return sorted(n for n, c in _METHODS.items() if kind is None or c.kind == kind)


def aliases() -> dict[str, str]:
    """Alias -> canonical name."""
    return dict(_ALIASES)

"""Refusing constructor options a client does not have, naming the close matches.

Python's own ``unexpected keyword argument`` names the mistake but not the fix, and code ported from
kafka-python brings near-miss names (``lingerms``, ``max_in_flight_requests``) and options this client
lacks. ``@refuse_unknown_options`` on a class checks the keyword names before its ``__init__`` runs; the
signature stays as written, so type checkers and ``help()`` still see every option.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T", bound=type)


def option_names(constructor: Callable[..., Any]) -> list[str]:
    """The options ``constructor`` takes by keyword (not ``self``, not ``*args``)."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    parameters = inspect.signature(constructor).parameters.values()
    return [p.name for p in parameters if p.kind in named and p.name != "self"]


def unknown_options_error(owner: str, unknown: Iterable[str], known: Iterable[str]) -> TypeError:
    """A ``TypeError`` naming each unknown option with its close matches, then every known one."""
    known = sorted(known)
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    plural = "s" if len(parts) > 1 else ""
    return TypeError(f"{owner} has no option{plural} {', '.join(parts)}; its options are: {', '.join(known)}")


def refuse_unknown_options(cls: T) -> T:
    """Class decorator: a keyword argument ``cls.__init__`` does not take raises ``unknown_options_error``."""
    init = cls.__init__  # type: ignore[misc]  # the class itself, not an instance
    known = frozenset(option_names(init))

    @functools.wraps(init)
    def checked_init(self: Any, *args: Any, **options: Any) -> None:
        if not known.issuperset(options):
            raise unknown_options_error(cls.__name__, set(options) - known, known)
        init(self, *args, **options)

    cls.__init__ = checked_init  # type: ignore[misc]
    return cls

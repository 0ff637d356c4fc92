"""Where a fuzzer may change a JSON value, and the value with one part changed."""

from __future__ import annotations

from typing import Any


def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value a mutation can go: the value itself, each member
    and item, and a new member of each object."""
    found: list[tuple[Any, ...]] = [path]
    if isinstance(value, dict):
        found.append((*path, "extra"))
        for key, child in value.items():
            found.extend(places(child, (*path, key)))
    elif isinstance(value, list):
        for n, child in enumerate(value):
            found.extend(places(child, (*path, n)))
    return found


def put(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of `value` with `new` at `path`; the original is left as it was."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: put(value.get(head), rest, new)}
    copy = list(value)
    copy[head] = put(copy[head], rest, new)
    return copy

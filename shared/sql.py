"""Building SQL from fixed identifiers and numbered parameters, never from values.

Every value a caller sends becomes a `$n` parameter through `Params.add`; the
SQL text itself is assembled only from identifiers and fragments written in
this codebase.
"""

from __future__ import annotations

from typing import Any


class Params:
    """The positional parameters of one statement, numbered as they are added."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def add(self, value: Any, cast: str | None = None) -> str:
        """The placeholder for `value` (e.g. "$3" or "$3::uuid[]")."""
        self.values.append(value)
        placeholder = f"${len(self.values)}"
        return f"{placeholder}::{cast}" if cast else placeholder

    def __len__(self) -> int:
        return len(self.values)

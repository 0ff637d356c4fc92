"""The import graph points one way: tooling → functions → HTTP kit → domain → data.

A module may import its own layer and the layers below it, never one above; the
web frameworks (FastAPI, Starlette, uvicorn) are imported only by the HTTP kit and
above, so domain code returns data and the kit turns it into responses. Every
import counts, also one inside a function or under TYPE_CHECKING.

Run by `make lint` (`python -m shared.tooling.layers`) and by the test suite.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Highest first. A layer may import itself and everything after it.
LAYERS = ("tooling", "functions", "http", "domain", "data")

# The HTTP kit: the function factory, its dependencies, the input guard and the
# channels' webhook endpoint (shared/webhooks.py); and endpoint glue in a module of
# one of these names wherever it lives, so a package may keep its glue beside its logic.
HTTP_KIT = ("shared.web", "shared.guard")
HTTP_GLUE_NAMES = frozenset({"web", "webhook", "webhooks"})

# Below the domain: configuration, the pool and transactions, errors, principals,
# and the helpers they share.
DATA = (
    "shared.settings",
    "shared.db",
    "shared.errors",
    "shared.auth",
    "shared.runtime",
    "shared.sql",
    "shared.safejson",
)

WEB_FRAMEWORKS = frozenset({"fastapi", "starlette", "uvicorn"})
WEB_LAYERS = frozenset({"tooling", "functions", "http"})
SOURCES = ("functions", "shared")


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def layer_of(module: str) -> str | None:
    """The layer of one of our modules; None for anything else (libraries, tests)."""
    if _within(module, ("shared.tooling",)):
        return "tooling"
    if _within(module, ("functions",)):
        return "functions"
    if not _within(module, ("shared",)) or module == "shared":
        return None
    if _within(module, HTTP_KIT) or HTTP_GLUE_NAMES & set(module.split(".")[1:]):
        return "http"
    if _within(module, DATA):
        return "data"
    return "domain"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    importer: str
    imported: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} ({self.why})"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(root: Path, module: str, is_package: bool, tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) for every import; `from a import b` is a.b when b is a module."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                as_path = root.joinpath(*sub.split("."))
                exists = as_path.with_suffix(".py").is_file() or (as_path / "__init__.py").is_file()
                yield node.lineno, sub if exists else base


def check(root: Path) -> list[Violation]:
    """Every import under `root`'s source folders that points up or reaches for a web
    framework below the HTTP kit."""
    found: list[Violation] = []
    for folder in SOURCES:
        for path in sorted((root / folder).rglob("*.py")):
            module = _module_name(root, path)
            own = layer_of(module)
            if own is None:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            imports = set(_imports(root, module, path.name == "__init__.py", tree))
            for line, imported in sorted(imports):
                where = str(path.relative_to(root))
                theirs = layer_of(imported)
                if theirs is not None and LAYERS.index(theirs) < LAYERS.index(own):
                    why = f"{own} may not import {theirs}"
                    found.append(Violation(where, line, module, imported, why))
                elif imported.split(".")[0] in WEB_FRAMEWORKS and own not in WEB_LAYERS:
                    why = f"{own} returns data; only the HTTP kit and above use a web framework"
                    found.append(Violation(where, line, module, imported, why))
    return found


def main() -> int:
    root = Path(__file__).resolve().parents[2]
    violations = check(root)
    for violation in violations:
        print(violation, file=sys.stderr)
    if violations:
        print(
            f"{len(violations)} imports against the layers: {' → '.join(LAYERS)}", file=sys.stderr
        )
        return 1
    print(f"layers kept: {' → '.join(LAYERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

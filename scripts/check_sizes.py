"""Fail when a function in src/ is longer than 60 lines or a module longer than 400.

A module over ~400 lines or a function over ~60 holds two ideas (see the README's design
section); generated Alembic migrations are exempt.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_FUNCTION = 60
MAX_MODULE = 400
EXEMPT = ("db/migrations/versions/",)


def problems(root: Path) -> list[str]:
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(rel.startswith(e) for e in EXEMPT):
            continue
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE:
            out.append(f"{path}: module has {lines} lines (limit {MAX_MODULE})")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                length = (node.end_lineno or node.lineno) - first + 1
                if length > MAX_FUNCTION:
                    out.append(f"{path}:{node.lineno}: {node.name} has {length} lines (limit {MAX_FUNCTION})")
    return out


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src/imagegate")
    found = problems(root)
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

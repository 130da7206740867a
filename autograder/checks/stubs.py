"""Which exercise stubs are left in a learner's Python file, read from its source (no code runs)."""

from __future__ import annotations

import ast


def stubs_left(ctx, files: tuple[str, ...]) -> list[str]:
    """'service.module.function' for every stub left in the workspace ``files`` (service/*.py)."""
    return [
        f"{relative.removesuffix('.py').replace('/', '.')}.{name}"
        for relative in files
        for name in stubbed_functions(ctx.read_text(relative))
    ]


def stubbed_functions(source: str) -> list[str]:
    """Names of the functions whose own body (not a nested function's) still raises
    NotImplementedError: the exercise stubs nbgrader left in the student version."""
    found: set[str] = set()

    def visit(node: ast.AST, owner: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
            else:
                if owner and isinstance(child, ast.Raise) and "NotImplementedError" in ast.unparse(child.exc or child):
                    found.add(owner)
                visit(child, owner)

    visit(ast.parse(source), None)
    return sorted(found)

"""The built-in corpus: Python's own documentation, which ships with every Python (no download).

Two sources: ``pydoc_data.topics`` (the language reference topics behind ``help()``), and one
document per stdlib module built from its docstrings (module, public classes, functions and
methods), read with ``ast`` so no module is imported (importing ``antigravity`` opens a browser).
"""
from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

# Test suites, vendored third-party code and IDLE's tests are not documentation.
_SKIP_PARTS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "lib2to3", "turtledemo"}


def pydoc_topics() -> Iterator[dict]:
    from pydoc_data.topics import topics

    for key in sorted(topics):
        yield {"id": f"topics/{key}", "text": topics[key], "source": "stdlib:pydoc_topics", "title": key}


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    return f"{node.name}({ast.unparse(node.args)})"


def module_document(source: str, name: str) -> str:
    """One module's docstrings as a pydoc-like text: module doc, then each public class/function."""
    tree = ast.parse(source)
    parts = []
    if doc := ast.get_docstring(tree):
        parts.append(doc)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            if doc := ast.get_docstring(node):
                parts.append(f"{_signature(node)}\n{doc}")
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            if doc := ast.get_docstring(node):
                parts.append(f"class {node.name}\n{doc}")
            for sub in node.body:
                public = isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and not sub.name.startswith("_")
                if public and (doc := ast.get_docstring(sub)):
                    parts.append(f"{node.name}.{_signature(sub)}\n{doc}")
    return "\n\n".join(parts)


def module_docstrings(stdlib_dir: str | Path | None = None) -> Iterator[dict]:
    root = Path(stdlib_dir or sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if _SKIP_PARTS.intersection(rel.parts) or any(
                (p.startswith("_") and p != "__init__.py") or "-" in p for p in rel.parts):  # "-": not importable
            continue
        name = _module_name(root, path)
        try:
            text = module_document(path.read_text(encoding="utf-8"), name)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a handful of stdlib files are deliberately unparsable (bad-syntax fixtures)
        yield {"id": f"module/{name}", "text": text, "source": "stdlib:module_docstrings", "title": name}


def stdlib_documents(include_topics: bool = True, include_modules: bool = True) -> Iterator[dict]:
    if include_topics:
        yield from pydoc_topics()
    if include_modules:
        yield from module_docstrings()

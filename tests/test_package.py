"""The package as a whole: its import graph, its public surface, and the README's table of it."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import shakespeare_lm

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "shakespeare_lm"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _relative_imports(module: str) -> list[tuple[str, bool]]:
    """(submodule imported, inside a function?) for every `from .x import ...` / `from . import x`."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    in_function = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                   for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            names = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
            found += [(name, id(node) in in_function) for name in names]
    return found


def import_graph() -> dict[str, set[str]]:
    return {m: {name for name, _ in _relative_imports(m)} for m in MODULES}


def test_modules_import_only_submodules_never_the_package_init():
    for module, imported in import_graph().items():
        stray = imported - set(MODULES)
        assert not stray, f"{module} imports {stray} from the package __init__"


def test_own_modules_are_imported_at_the_top():
    # __main__ is the one exception: it imports the command line inside a Ctrl-C guard
    for module in MODULES:
        inside = [name for name, in_function in _relative_imports(module) if in_function]
        assert module == "__main__" or not inside, f"{module} imports {inside} inside a function"


def test_no_import_cycles():
    graph, state = import_graph(), {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == "done":
            return
        assert state.get(m) != "active", "import cycle: " + " -> ".join([*path, m])
        state[m] = "active"
        for n in sorted(graph[m]):
            visit(n, [*path, m])
        state[m] = "done"

    for m in MODULES:
        visit(m, [])


def test_importing_the_package_is_cheap_and_lazy():
    code = "import sys, shakespeare_lm; print('torch' in sys.modules, shakespeare_lm.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", shakespeare_lm.__version__]


def test_every_public_name_resolves_and_unknown_names_raise():
    for name in shakespeare_lm.__all__:
        assert getattr(shakespeare_lm, name) is not None
    assert shakespeare_lm.train.__module__ == "shakespeare_lm.training"  # the function, not a module
    try:
        shakespeare_lm.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("an unknown attribute must raise AttributeError")


def _readme_api_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("The public API, all importable"):]
    rows = {}
    for line in section.splitlines()[2:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == "module" or set(cells[0]) <= {"-", " "}:
            continue
        module = cells[0].strip("`")
        rows[module] = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", cells[1]))
    return rows


def test_readme_api_table_matches_the_package():
    rows = _readme_api_table()
    listed = [name for names in rows.values() for name in names]
    assert sorted(listed) == sorted(set(shakespeare_lm.__all__) - {"__version__"})
    for module, names in rows.items():
        mod = importlib.import_module(f"shakespeare_lm.{module}")
        for name in names:
            assert getattr(mod, name) is getattr(shakespeare_lm, name), f"{name} is not from {module}"

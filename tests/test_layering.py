"""The layers point one way: engine, models, data, metrics and losses never import sam, campaigns, book or the CLI,
and no two polyplib modules import each other at module level (read from the source with `ast`)."""
import ast
import subprocess
import sys
from pathlib import Path

import polyplib

PACKAGE = Path(polyplib.__file__).parent
LOWER = ("polyplib.engine", "polyplib.models", "polyplib.data", "polyplib.metrics", "polyplib.losses")
UPPER = ("polyplib.sam", "polyplib.campaigns", "polyplib.book", "polyplib.cli")
# edges of the two bench harnesses that the polyplib/bench/ package replaces; emptied when it lands
KNOWN_BENCH_EXCEPTIONS: set[tuple[str, str]] = set()


def module_files() -> dict[str, Path]:
    """Every module of polyplib by dotted name (a package by its own name)."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def in_part(name: str, parts: tuple[str, ...]) -> bool:
    return any(name == part or name.startswith(part + ".") for part in parts)


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported polyplib module, whether the import runs when `name` is imported) for every import statement and
    `import_module` call naming a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in modules else base, top))
            elif isinstance(child, ast.Call) and ast.unparse(child.func).endswith("import_module") and child.args \
                    and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str):
                found.append((child.args[0].value, top))  # importlib.import_module("polyplib....")
            visit(child, top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                  and not _type_checking(child))

    visit(ast.parse(path.read_text(), str(path)), True)
    return [(target, top) for target, top in found if in_part(target, ("polyplib",)) and target != name]


def graph(top_only: bool) -> dict[str, set[str]]:
    modules = module_files()
    return {name: {t for t, top in imports(name, path, modules) if top or not top_only}
            for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of `edges` (the modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_lower_layers_never_import_sam_campaigns_book_or_the_cli():
    wrong = sorted((src, dst) for src, targets in graph(top_only=False).items() if in_part(src, LOWER)
                   for dst in targets if in_part(dst, UPPER) and (src, dst) not in KNOWN_BENCH_EXCEPTIONS)
    assert not wrong, "lower layer imports an upper one: " + ", ".join(f"{a} -> {b}" for a, b in wrong)


def test_no_import_cycle_between_polyplib_modules():
    cycle = find_cycle(graph(top_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checks_see_function_level_imports_and_find_a_cycle(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("import os\nfrom polyplib.errors import ConfigError\n\ndef f():\n"
                    "    from polyplib.sam.model import PolypSAM\n    from . import registry\n"
                    "    importlib.import_module('polyplib.book')\n")
    found = imports("polyplib.models.m", path, module_files())
    assert found == [("polyplib.errors", True), ("polyplib.sam.model", False), ("polyplib.models.registry", False),
                     ("polyplib.book", False)]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_importing_the_lower_layers_loads_no_plugin():
    code = ("import sys, polyplib.engine, polyplib.engine.evaluate, polyplib.models, polyplib.data, polyplib.metrics, "
            "polyplib.losses; print(sorted(m for m in sys.modules if m.startswith(('polyplib.sam', "
            "'polyplib.campaigns', 'polyplib.book', 'polyplib.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

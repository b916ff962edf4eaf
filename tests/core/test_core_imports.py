"""The core's import graph, read from the source with ``ast``: no cycle among ``oml_core`` modules through
module-level imports (imports under ``if TYPE_CHECKING:`` and inside functions are lazy and do not count), and
``import oml_core`` does not import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "oml_core"


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _eager_imports(tree: ast.Module, module: str, is_package: bool, known: set[str] = frozenset()) -> set[str]:  # type: ignore[assignment]
    """Modules imported when ``module`` is imported: top-level statements (and ``if``/``try`` blocks among them).

    ``from pkg import sub`` counts as an import of ``pkg.sub`` when that is a module in ``known``, else of ``pkg``.
    """
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                if not _is_type_checking(node):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                submodules = {f"{target}.{alias.name}" for alias in node.names} & known
                found.update(submodules)
                if len(submodules) < len(node.names):
                    found.add(target)

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = _eager_imports(ast.parse(path.read_text()), name, path.name == "__init__.py", set(modules))
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_reader_sees_cycles_and_ignores_lazy_imports() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from oml_core.b import x\nimport oml_core.c\n"
    assert _eager_imports(ast.parse(source), "oml_core.a", False) == {"typing", "oml_core.c"}
    relative = ast.parse("from . import b\nfrom .c import d\n")
    assert _eager_imports(relative, "oml_core.pkg.a", False, {"oml_core.pkg.b"}) == {"oml_core.pkg.b", "oml_core.pkg.c"}
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_core_modules() -> None:
    graph = import_graph()
    assert len(graph) > 50 and "oml_core.host" in graph["oml_core"]
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_import_oml_core_does_not_import_torch() -> None:
    code = "import sys, oml_core; from oml_core import Host; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_oml_help_does_not_import_torch() -> None:
    """`oml --help` (and a subcommand's help) read only the commands: no plugin fills a registry, none imports torch."""
    code = (
        "import sys\nfrom oml_core.cli import main\n"
        "for argv in (['--help'], ['zoo', 'show', '--help'], []):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "zoo" in result.stdout and "export" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "False"


"""The import graph of the `control` package, and its cycles.

`python -m control.tools.import_graph` prints every cycle between the package's modules
(exit 1 when there is one) or says there are none. Every import counts, including the lazy
ones inside functions: a lazy import hides a cycle from Python's import machinery, not from
the design (the layers of DESIGN.md depend downwards only). The package's own `__init__`
modules are left out of the cycle search: importing `control.x.y` runs `control/__init__.py`
first whatever the code says, so an edge to a package `__init__` is not a design dependency.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "control"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    """control/env/racing_env.py -> control.env.racing_env (a package's __init__ -> the package)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an `from X import ...` statement names (relative imports included)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path, modules: set[str], root: Path = PACKAGE_ROOT) -> set[str]:
    """The package modules `path` imports, anywhere in the file (top level and inside functions)."""
    name = module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(name, path.name == "__init__.py", node)
            # `from control.env import racing_env` imports the submodule when there is one.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            # `import control.env.racing_env` also names its parents; the deepest known module is the edge.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = PACKAGE_ROOT) -> dict[str, set[str]]:
    """module -> the package modules it imports."""
    paths = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {module_name(p, root) for p in paths}
    return {module_name(p, root): imports_of(p, modules, root) for p in paths}


def _strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's strongly connected components with more than one module (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    yield sorted(component)


def import_cycles(root: Path = PACKAGE_ROOT) -> list[list[str]]:
    """Groups of modules that import each other (directly or round a loop); [] when there are none."""
    graph = import_graph(root)
    packages = {module_name(p, root) for p in root.rglob("__init__.py")}
    graph = {m: {t for t in targets if t not in packages} for m, targets in graph.items() if m not in packages}
    return sorted(_strongly_connected(graph))


def main(argv: list[str] | None = None) -> int:
    """Print the import cycles of the package; exit status 1 when there is one."""
    parser = argparse.ArgumentParser(prog="python -m control.tools.import_graph", description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="also print every module's imports")
    args = parser.parse_args(argv)
    if args.edges:
        for module, targets in sorted(import_graph().items()):
            print(f"{module}: {', '.join(sorted(targets)) or '-'}")
    cycles = import_cycles()
    if not cycles:
        print(f"no import cycles in {PACKAGE}")
        return 0
    for cycle in cycles:
        print("import cycle: " + " <-> ".join(cycle))
    return 1


if __name__ == "__main__":
    sys.exit(main())

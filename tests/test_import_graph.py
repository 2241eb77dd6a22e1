"""The package's layers depend downwards only: no import cycle between its modules (lazy imports included)."""
from __future__ import annotations

from pathlib import Path

from control.tools.import_graph import import_cycles, import_graph, main


def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "control"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return pkg


def test_the_control_package_has_no_import_cycle():
    assert import_cycles() == []


def test_a_cycle_through_a_lazy_import_is_found(tmp_path):
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a/__init__.py": "",
        "a/low.py": "def f():\n    from control.a.high import g\n    return g\n",
        "a/high.py": "from control.a import low\n",
        "b.py": "import control.a.low\n",
    })
    assert import_cycles(pkg) == [["control.a.high", "control.a.low"]]
    assert import_graph(pkg)["control.b"] == {"control.a.low"}


def test_relative_imports_resolve_and_an_acyclic_package_passes(tmp_path):
    pkg = _package(tmp_path, {"__init__.py": "", "x/__init__.py": "", "x/one.py": "from . import two\n", "x/two.py": "import os\n"})
    assert import_graph(pkg)["control.x.one"] == {"control.x.two"}
    assert import_cycles(pkg) == []


def test_cli_exit_status_says_whether_there_is_a_cycle(capsys):
    status = main([])
    out = capsys.readouterr().out
    assert (status == 0) == ("no import cycles" in out)

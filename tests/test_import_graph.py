"""The ``ich`` packages import one another one way: no cycles, no reach into ``stages``/``bench``.

Arrows run io <- data <- train <- stages; a cycle between two packages (``synth`` importing
``sources`` importing ``synth``) means neither can be read or tested alone.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_dvc_deps import imported_modules

PACKAGE = REPO / "ich"


def _unit(module: str) -> str:
    """``ich.x.y`` -> ``ich.x`` (a subpackage, or a top-level module such as ``ich.labels``)."""
    return ".".join(module.split(".")[:2])


def package_graph(root: Path = REPO) -> dict[str, set[str]]:
    """``{unit: units it imports}`` over every file of ``ich`` (imports inside functions too)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / "ich").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        unit = _unit(module)
        targets = {_unit(m) for m in imported_modules(path, root) if m != "ich"}
        graph.setdefault(unit, set()).update(targets - {unit})
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        return list(err.args[1])
    return None


def test_the_packages_of_ich_import_one_another_without_cycles():
    cycle = find_cycle(package_graph())
    assert cycle is None, f"import cycle between ich packages: {' -> '.join(cycle)}"


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"ich.a": {"ich.b"}, "ich.b": {"ich.a"}}) is not None
    assert find_cycle({"ich.a": {"ich.b"}, "ich.b": set()}) is None


@pytest.mark.parametrize("outside", ["stages", "bench", "experiments", "tests", "tools"])
def test_the_library_never_imports_stages_bench_tests_or_tools(outside):
    offenders = [
        path.relative_to(REPO).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(m.split(".")[0] == outside for m in _all_imports(path))
    ]
    assert not offenders, f"ich imports {outside}: {offenders}"


def _all_imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_tests_do_not_import_bench():
    offenders = [p.name for p in (REPO / "tests").glob("*.py") if any(m.startswith("bench") for m in _all_imports(p))]
    assert not offenders, f"tests import bench/: {offenders}"


@pytest.mark.parametrize("unit", ["ich.predict", "ich.explain", "ich.networks"])
def test_inference_stands_beside_training_not_above_it(unit):
    graph = package_graph()
    assert "ich.train" not in graph[unit], f"{unit} imports ich.train: a network is built and run by ich.networks"
    reached, todo = set(), [unit]
    while todo:  # nor through another package
        for target in graph.get(todo.pop(), set()) - reached:
            reached.add(target)
            todo.append(target)
    assert "ich.train" not in reached, f"{unit} reaches ich.train"
    explain_stage = {m for m in imported_modules(REPO / "stages" / "explain.py", REPO)}
    assert not any(m.startswith("ich.train") for m in explain_stage)

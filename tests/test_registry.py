"""Every registered kind is complete, the layers import only downwards, and generated docs are current."""

import ast
import importlib
import inspect
import re

import pytest
from conftest import ROOT

from gen.config.base import KindConfig
from gen.docs import config_reference
from gen.registry import KINDS
from npuforge.registry import SUPPORT, unsupported


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_kind_is_complete(kind):
    assert issubclass(kind.config, KindConfig)
    assert kind.config.model_fields["kind"].annotation.__args__ == (kind.name,)
    assert kind.config.summary
    support = SUPPORT[kind.name]
    golden = importlib.import_module(support.golden)
    assert inspect.getmembers(golden, inspect.isfunction)
    testbench = importlib.import_module(support.testbench)
    for function in ("make_vectors", "first_mismatch", "describe_mismatch", "summary_lines"):
        assert callable(getattr(testbench, function)), function
    assert "seed" in inspect.signature(testbench.make_vectors).parameters
    doc = (ROOT / kind.doc).read_text()
    for port in ("clk", "rst"):
        assert f"`{port}`" in doc
    assert any(config.read_text().find(f"kind: {kind.name}") >= 0 for config in (ROOT / "configs").rglob("*.yaml"))
    assert unsupported() == []


#: layer -> the layers it may import (besides itself and third-party packages).
ALLOWED_IMPORTS = {
    "hw": {"hw"},
    "gen": {"hw", "gen"},
    "sim": {"hw", "gen", "sim"},
    "fpga": {"hw", "gen", "fpga"},
    "npuforge": {"hw", "gen", "sim", "fpga", "npuforge"},
}


def _imported_layers(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in ALLOWED_IMPORTS:
                yield node.lineno, top


@pytest.mark.parametrize("layer", sorted(ALLOWED_IMPORTS))
def test_layers_import_only_downwards(layer):
    """hw < gen < sim, fpga < npuforge: nothing reaches up (strings naming modules excepted)."""
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, top in _imported_layers(path):
            assert top in ALLOWED_IMPORTS[layer], f"{path.relative_to(ROOT)}:{line} imports {top}"


FLOORS = sorted(ALLOWED_IMPORTS)


def _module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict:
    """Module name -> file, every module of every floor."""
    return {_module_name(path): path for floor in FLOORS for path in sorted((ROOT / floor).rglob("*.py"))}


def _imports(path, modules, name=None) -> list:
    """(line, module) for every import of a module in ``modules`` anywhere in ``path`` (function
    bodies included): ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``.
    ``name``: the module ``path`` is (default: from its place in the tree)."""
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in modules or source in modules:
                    found.append((node.lineno, target if target in modules else source))
    return found


def import_cycles(graph: dict) -> list:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_cycle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    """Among the modules of hw, gen, sim, fpga, npuforge: no module reaches itself through imports,
    late (function-level) imports included. An import names one module: ``from pkg.mod import x``
    counts ``pkg.mod``, not the packages Python initialises on the way."""
    modules = _modules()
    graph = {name: {target for _, target in _imports(path, modules)} - {name} for name, path in modules.items()}
    assert graph["gen.elaborate"] and graph["gen.config.loader"]  # the graph sees imports at all
    assert import_cycles(graph) == []


def _command_modules() -> set:
    from npuforge.cli import COMMANDS

    return {module.__name__ for module in COMMANDS.values()}


def test_only_the_command_line_imports_a_command_module():
    """Work lives in its floor, not in a command (npuforge/cli/<command>.py): no other command, bench
    or module may import from one; npuforge/cli/__init__.py lists them, tests may test them.
    npuforge/cli/args.py and output.py are shared helpers, not commands."""
    commands = _command_modules()
    assert {"npuforge.cli.inject", "npuforge.cli.characterize"} <= commands
    assert not {"npuforge.cli.args", "npuforge.cli.output"} & commands
    modules = {**_modules(), **{f"bench.{p.stem}": p for p in sorted((ROOT / "bench").glob("*.py"))}}
    offenders = []
    for name, path in sorted(modules.items()):
        if name == "npuforge.cli":
            continue
        for line, target in _imports(path, modules):
            if target in commands and target != name:
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert offenders == []


def test_command_check_sees_an_offender(tmp_path):
    """The check above is not blind: a bench importing a command's function, or a command importing
    another (relative import), is caught; the shared helpers are not."""
    modules = _modules()
    bench = tmp_path / "bench.py"
    bench.write_text("from npuforge.cli.characterize import print_report\nfrom npuforge.cli import args, report\n")
    command = tmp_path / "fake.py"
    command.write_text("def run(args):\n    from .inject import Progress\n    from . import output\n")
    targets = [t for _, t in _imports(bench, modules, "bench.bench") + _imports(command, modules, "npuforge.cli.fake")]
    assert [t for t in targets if t in _command_modules()] == [
        "npuforge.cli.characterize", "npuforge.cli.report", "npuforge.cli.inject"]
    assert "npuforge.cli.args" in targets and "npuforge.cli.output" in targets


def test_config_reference_is_current():
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == config_reference(), "run: python -m gen.docs > docs/config.md"


def test_docs_name_every_cli_command_and_suppression():
    from gen.lint import SUPPRESSED_WARNINGS
    from npuforge.cli import COMMANDS

    readme = (ROOT / "README.md").read_text()
    for command in COMMANDS:
        assert f"npuforge {command}" in readme, command
    assert "make demo" in readme and "make test" in readme
    lint_doc = (ROOT / "docs" / "lint.md").read_text()
    for warning in SUPPRESSED_WARNINGS:
        assert f"`{warning}`" in lint_doc, warning
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    for command in COMMANDS:
        assert f"npuforge/cli/{command}.py" in architecture, command


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)

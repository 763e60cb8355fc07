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

"""Every registered kind is complete, and the docs generated from the models are current."""

import importlib
import inspect
import re

import pytest
from conftest import ROOT

from gen.config.base import KindConfig
from gen.docs import config_reference
from gen.registry import KINDS


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_kind_is_complete(kind):
    assert issubclass(kind.config, KindConfig)
    assert kind.config.model_fields["kind"].annotation.__args__ == (kind.name,)
    assert kind.config.summary
    golden = importlib.import_module(kind.golden)
    assert inspect.getmembers(golden, inspect.isfunction)
    testbench = importlib.import_module(kind.testbench)
    for function in ("make_vectors", "first_mismatch", "describe_mismatch"):
        assert callable(getattr(testbench, function)), function
    assert "seed" in inspect.signature(testbench.make_vectors).parameters
    doc = (ROOT / kind.doc).read_text()
    for port in ("clk", "rst"):
        assert f"`{port}`" in doc
    assert any(config.read_text().find(f"kind: {kind.name}") >= 0 for config in (ROOT / "configs").glob("*.yaml"))


def test_config_reference_is_current():
    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == config_reference(), "run: python -m gen.docs > docs/config.md"


def test_docs_name_every_cli_command_and_suppression():
    from gen.cli import _COMMANDS
    from gen.lint import SUPPRESSED_WARNINGS

    readme = (ROOT / "README.md").read_text()
    for command in _COMMANDS:
        assert f"npuforge {command}" in readme, command
    assert "make demo" in readme and "make test" in readme
    lint_doc = (ROOT / "docs" / "lint.md").read_text()
    for warning in SUPPRESSED_WARNINGS:
        assert f"`{warning}`" in lint_doc, warning


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)

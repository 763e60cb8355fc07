"""Random valid configs of every kind generate lint-clean Verilog, and a few of them simulate bit-exact.

Hypothesis draws from each kind's config space (``gen/config_space.py``, small sizes) afresh
every run (no example database, no fixed seed): draws that validation rejects are
discarded, not counted (``assume``), and every one that passes is elaborated and linted
with Verilator: ten per kind and two simulated per run of the suite (fresh draws each run, so CI
covers new configs every time). A failure names the config as one line of YAML, to reproduce with
``npuforge generate CONFIG --lint``; ``bench/config_fuzz.py`` checks 200 per kind.
"""

import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import BUILD_ROOT
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st

from gen.config import parse_config_data
from gen.config_space import SPACES
from gen.emit import generate
from gen.errors import ConfigError
from gen.lint import lint, with_source
from npuforge.registry import sim_testbench
from sim.runner import simulate

#: Drawn afresh each run; no shrinking (each example costs an elaboration), the config is in the message.
FRESH = settings(database=None, deadline=None, derandomize=False, phases=(Phase.generate,),
                 suppress_health_check=(HealthCheck.too_slow, HealthCheck.filter_too_much))


class HypothesisDraw:
    """:class:`gen.config_space.Draw` over Hypothesis' interactive ``data.draw``."""

    def __init__(self, data):
        self._data = data

    def integer(self, low: int, high: int) -> int:
        return self._data.draw(st.integers(low, high))

    def choice(self, options):
        return self._data.draw(st.sampled_from(list(options)))


def draw_valid(data, kind: str):
    """A config of ``kind`` that passes validation (others are discarded), and its data as one YAML line."""
    config = SPACES[kind](HypothesisDraw(data), True)
    text = yaml.safe_dump(config, default_flow_style=True, sort_keys=False, width=10_000).strip()
    note(f"config: {text}")
    try:
        cfg = parse_config_data(config, "<drawn>")
    except ConfigError:
        assume(False)
    return cfg, text


@pytest.mark.parametrize("kind", sorted(SPACES))
@settings(FRESH, max_examples=10)
@given(data=st.data())
def test_random_valid_configs_lint_clean(kind, data):
    cfg, text = draw_valid(data, kind)
    with tempfile.TemporaryDirectory() as out:
        verilog = generate(cfg, Path(out)).files[0]
        problems = with_source(lint(verilog, cfg.name), verilog)
    assert problems == [], f"{kind} config {text} lints with: {problems[:3]}"


@pytest.mark.rtl
@settings(FRESH, max_examples=2)
@given(data=st.data())
def test_random_valid_configs_simulate_bit_exact(data):
    """Two random small configs (any kinds) built and run through the ``npuforge sim`` path."""
    kind = data.draw(st.sampled_from(sorted(SPACES)))
    cfg, text = draw_valid(data, kind)
    flow = data.draw(st.sampled_from(((1.0, 1.0), (0.6, 0.5))))
    seed = data.draw(st.integers(0, 2**32 - 1))
    # The suite's build root: the drawn config gets a directory of its own (name and hash) and shares
    # Verilator's runtime objects and precompiled header with the other models.
    done = simulate(cfg, sim_testbench(cfg), seed=seed, n_random=4, valid_prob=flow[0], ready_prob=flow[1],
                    build_root=BUILD_ROOT)
    result = done.run
    print(f"simulated {kind}: {text}, seed {seed}, valid/ready {flow}")
    assert result.ok, (f"{kind} config {text}, seed {seed}, valid/ready {flow}: "
                       f"{result.mismatch or result.problems}; log {result.log}")

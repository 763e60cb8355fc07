"""The precompiled header of Verilator's runtime that models share (``sim/verilator_runtime.py``).

It saves about a third of the suite's C++ time, and nothing fails when it silently stops being used
(a compiler refusing it reads the headers as text): so these tests look at what the compiler did.
"""

import os
import shlex
import subprocess

from conftest import per_config

from gen.toolchain import apply_verilator_env
from sim import verilator_runtime
from sim.verilator_runtime import PCH_NAME, keep_pch, pch_args


def test_no_arguments_without_a_kept_header_or_on_a_path_with_blanks(tmp_path):
    assert pch_args(tmp_path / "none") == []
    for where in (tmp_path / "kept", tmp_path / "with blank"):
        where.mkdir()
        for kind in ("fast", "slow"):
            (where / f"{PCH_NAME}.{kind}.gch").write_bytes(b"")
    header = (tmp_path / "kept").resolve() / PCH_NAME
    assert pch_args(tmp_path / "kept") == [f"VK_PCH_H={header}", f"VK_PCH_I_FAST=-include{header}.fast",
                                           f"VK_PCH_I_SLOW=-include{header}.slow"]
    assert pch_args(tmp_path / "kept", one_optimisation=True)[-1] == f"USER_CPPFLAGS=-include{header}.fast"
    assert pch_args(tmp_path / "with blank") == []  # make's command line would split it


def test_a_failed_make_keeps_nothing(tmp_path):
    (tmp_path / "model").mkdir()  # no Vtop.mk: make fails
    keep_pch(tmp_path / "shared", tmp_path / "model", dict(os.environ))
    assert not (tmp_path / "shared").exists() and list(tmp_path.iterdir()) == [tmp_path / "model"]


@per_config("tpe_1x1_w4")
def test_the_kept_header_is_taken_by_the_next_compile(built, config_name, tmp_path):
    """keep_pch precompiles the runtime headers with a model's flags; the model's own compile of cocotb's main,
    repeated with the kept header, takes it (GCC's -H marks a precompiled header it uses with '!', one it
    refuses with 'x' before reading the text)."""
    model = built(config_name)
    apply_verilator_env()
    shared = tmp_path / "pch"
    keep_pch(shared, model.sim_dir, dict(os.environ))
    assert verilator_runtime.pch_args(shared, one_optimisation=True)
    log = (model.sim_dir / "build.log").read_text().splitlines()
    words = shlex.split(next(line for line in log if line.startswith("c++") and " -o verilator.o " in line))
    words = [word for word in words if not word.startswith("-include")]  # the suite's kept header, if any
    words[words.index("-o") + 1] = str(tmp_path / "verilator.o")
    header = shared.resolve() / PCH_NAME
    done = subprocess.run([words[0], f"-include{header}.fast", "-H", *words[1:]], cwd=model.sim_dir,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.splitlines()[0] == f"! {header}.fast.gch", done.stderr.splitlines()[:3]

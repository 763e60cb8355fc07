"""Config loading: every rejection is one line naming field, value and what is allowed."""

import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from npuforge.cli import main
from gen.config import load_config, parse_config_data, parse_config_text
from gen.errors import ConfigError

GOOD = {
    "kind": "tpe",
    "name": "os_8x8",
    "arch": "systolic_os",
    "rows": 8,
    "cols": 8,
    "operand": {"width": 8, "signed": True},
    "k_max": 64,
}


def _with(**changes):
    data = {**GOOD, "operand": dict(GOOD["operand"])}
    for key, value in changes.items():
        if key in ("operand_width", "operand_signed"):
            data["operand"][key[len("operand_"):]] = value
        elif value is _DROP:
            data.pop(key)
        else:
            data[key] = value
    return data


_DROP = object()
S24, S16, U8 = {"width": 24, "signed": True}, {"width": 16, "signed": True}, {"width": 8, "signed": False}

# (data, substrings the one-line message must contain)
REJECTED = [
    (_with(rows=0), ["rows", "got 0", "an integer from 1 to 64"]),
    (_with(cols=65), ["cols", "got 65", "an integer from 1 to 64"]),
    (_with(rows="8"), ["rows", "got '8'", "an integer"]),
    (_with(rows=8.5), ["rows", "got 8.5", "an integer"]),
    (_with(rows=True), ["rows", "got true", "an integer"]),
    (_with(rows=_DROP), ["rows", "missing", "an integer from 1 to 64"]),
    (_with(operand_width=3), ["operand.width", "got 3", "from 4 to 32"]),
    (_with(operand_width=33), ["operand.width", "got 33", "from 4 to 32"]),
    (_with(operand_signed="yes"), ["operand.signed", "got 'yes'", "true or false"]),
    (_with(operand_signed=1), ["operand.signed", "got 1", "true or false"]),
    (_with(operand=8), ["operand", "got 8", "a mapping with keys width, signed"]),
    (_with(k_max=0), ["k_max", "got 0", "from 1 to 65536"]),
    (_with(k_max=70000), ["k_max", "got 70000", "from 1 to 65536"]),
    (_with(acc_width=16), ["acc_width", "got 16", "from 22 to 64", "minimum for k_max=64"]),
    (_with(acc_width=65), ["acc_width", "got 65", "from 1 to 64"]),
    (_with(arch="tpu"), ["arch", "got 'tpu'", "one of 'systolic_os', 'systolic_ws', 'cube'"]),
    (_with(arch="cube"), ["depth", "missing required key for arch 'cube'", "an integer from 1 to 64"]),
    (_with(arch="systolic_ws"), ["k_max", "got 64", "no 'k_max' with arch 'systolic_ws'",
                                 "takes the keys kind, name, arch, rows, cols, operand, acc_width"]),
    (_with(arch="adder_tree", k_tile=8), ["rows", "got 8", "no 'rows' with arch 'adder_tree'",
                                         "cols, k_tile, k_max"]),
    (_with(arch="adder_tree", rows=_DROP), ["k_tile", "missing required key for arch 'adder_tree'"]),
    (_with(depth=4), ["depth", "no 'depth' with arch 'systolic_os'", "rows, cols, k_max, result_buffers"]),
    (_with(arch="matrix2d", result_buffers=2), ["result_buffers", "no 'result_buffers' with arch 'matrix2d'"]),
    (_with(result_buffers=3), ["result_buffers", "got 3", "one of 1, 2"]),
    (_with(arch="cube", depth=2, rows=6, result_rows=4),
     ["result_rows: 4 does not divide rows=6", "allowed: 1, 2, 3, 6"]),
    (_with(arch="matrix2d", result_rows=2), ["result_rows", "no 'result_rows' with arch 'matrix2d'"]),
    (_with(fanout=2), ["fanout", "no 'fanout' with arch 'systolic_os'"]),
    (_with(arch="matrix2d", fanout=65), ["fanout", "got 65", "an integer from 0 to 64"]),
    (_with(arch="matrix2d", mac="opt4c", fanout=2),
     ["fanout: 2 with mac 'opt4c'", "no broadcast registers", "allowed: 0"]),
    (_with(k_max=_DROP), ["k_max", "missing required key for arch 'systolic_os'", "from 1 to 65536"]),
    (_with(arch="systolic_ws", k_max=_DROP, rows=4, acc_width=17),
     ["acc_width", "got 17", "from 18 to 64", "minimum for rows=4"]),
    (_with(kind="tpu"), ["kind", "got 'tpu'", "one of 'tpe'"]),
    (_with(kind=_DROP), ["kind", "missing", "one of 'tpe'"]),
    (_with(kind=3), ["kind", "got 3", "one of 'tpe'"]),
    (_with(name="8x8"), ["name", "got '8x8'", "Verilog identifier"]),
    (_with(name="module"), ["name", "got 'module'", "not a reserved word"]),
    (_with(name="generate"), ["name", "got 'generate'", "not a reserved word"]),
    (_with(name="always_ff"), ["name", "got 'always_ff'", "not a reserved word"]),
    (_with(name="a" * 64), ["name", "Verilog identifier"]),
    (_with(name=[1]), ["name", "got a list", "Verilog identifier"]),
    ({**_with(), "colz": 8}, ["colz", "unknown key", "did you mean 'cols'?", "allowed keys: kind, name"]),
    ({**_with(), "operand": {"widht": 8}}, ["operand.widht", "unknown key", "did you mean 'width'?"]),
    ({**_with(), 1: 2}, ["top level: key 1 is not a string", "allowed: string keys"]),
    ({**_with(), True: 2}, ["key true is not a string"]),
    (_with(operand={"width": 8, None: 1}), ["operand: key null is not a string"]),
    (_with(k_max=10**100), ["k_max", "got an integer of 333 bits", "from 1 to 65536"]),
    # operand_a and operand_b: instead of operand, both of them, each a format of 4 to 32 bits
    (_with(operand_a=S24), ["operand_a: not allowed together with operand",
                            "give operand (one format for A and B) or both operand_a and operand_b"]),
    (_with(operand=_DROP, operand_b=S16), ["operand_a: missing required key (with operand_b)",
                                          "a mapping with keys width, signed"]),
    (_with(operand=_DROP, operand_a=S24), ["operand_b: missing required key (with operand_a)"]),
    (_with(operand=_DROP), ["operand: missing required key", "or both operand_a and operand_b"]),
    (_with(operand=_DROP, operand_a={"width": 40}, operand_b=S16), ["operand_a.width", "got 40", "from 4 to 32"]),
    (_with(operand=_DROP, operand_a=S24, operand_b={"width": 16, "signed": "no"}),
     ["operand_b.signed", "got 'no'", "true or false"]),
    (_with(operand=_DROP, operand_a=S24, operand_b=S16, acc_width=45),
     ["acc_width", "got 45", "from 46 to 64", "minimum for k_max=64 with 24-bit signed A and 16-bit signed B"]),
    (_with(operand=_DROP, operand_a=U8, operand_b=S16, k_max=1, acc_width=23),
     ["acc_width", "got 23", "from 24 to 64", "8-bit unsigned A and 16-bit signed B"]),
    (_with(operand_width=32), ["k_max: 64 needs 70-bit accumulators with 32-bit signed operands",
                               "above the 64-bit limit; allowed: k_max <= 1"]),
    (_with(operand=_DROP, operand_a=S24, operand_b=S16, k_max=65536, arch="systolic_ws"),
     ["k_max", "no 'k_max' with arch 'systolic_ws'"]),
    (_with(operand=_DROP, operand_a={"width": 32}, operand_b={"width": 32, "signed": False}, k_max=_DROP,
           arch="systolic_ws", rows=2),
     ["rows: 2 needs 65-bit accumulators with 32-bit signed A and 32-bit unsigned B", "allowed: rows <= 1"]),
    # the mac options that recode operands keep one format of at most 16 bits
    (_with(operand=_DROP, operand_a=S24, operand_b=S16, arch="matrix2d", mac="opt3"),
     ["mac: got 'opt3'", "allowed: 'baseline' with 24-bit signed A and 16-bit signed B operands",
      "mac 'opt3' takes one format for A and B (operand) of at most 16 bits"]),
    (_with(operand=_DROP, operand_a=U8, operand_b=S16, arch="adder_tree", rows=_DROP, k_tile=4, mac="opt2"),
     ["mac: got 'opt2'", "mac 'opt2' takes one format for A and B (operand) of at most 16 bits"]),
    (_with(operand_width=20, arch="matrix2d", mac="laconic"),
     ["mac: got 'laconic'", "'baseline' with 20-bit signed operands", "at most 16 bits"]),
    (_with(operand_width=20, arch="cube", depth=2, mac="opt4c"),
     ["mac: got 'opt4c'", "'baseline' or 'opt1' with 20-bit signed operands"]),
    ([1, 2], ["top level", "got a list", "a mapping"]),
    ("tpe", ["top level", "got 'tpe'", "a mapping"]),
    (None, ["empty config", "kind"]),
]


@pytest.mark.parametrize("data,parts", REJECTED, ids=[str(i) for i in range(len(REJECTED))])
def test_rejected_config_gives_one_line(data, parts, tmp_path, capsys):
    with pytest.raises(ConfigError) as caught:
        parse_config_data(data, "cfg.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("cfg.yaml: ")
    for part in parts:
        assert part in message, (part, message)

    # The same document as a file, through the command line: exit 2, the same single line.
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"npuforge: error: {path}: {message.removeprefix('cfg.yaml: ')}\n"


@pytest.mark.parametrize("text,parts", [
    ("kind: tpe\nkind: tpe\n", [":2:1:", "duplicate key 'kind'"]),
    ("k_max: " + "9" * 5000 + "\n", ["not valid YAML", "digits"]),
    ("? !!set {a}\n: 1\n", ["not valid YAML"]),
    ("kind: tpe\n? [1, 2]\n: 3\n", ["not valid YAML", "unhashable"]),
    ("a: [1, 2\n", ["not valid YAML"]),
    ("!!python/object:os.system {}\n", ["not valid YAML"]),
    ("\tkind: tpe\n", ["not valid YAML"]),
])
def test_yaml_errors_give_one_line(text, parts):
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "cfg.yaml")
    assert "\n" not in str(caught.value)
    for part in parts:
        assert part in str(caught.value)


def test_yaml_merge_keys_work():
    text = ("base: &base {kind: tpe, arch: systolic_os, rows: 8, cols: 8, operand: {width: 8}, k_max: 64}\n")
    with pytest.raises(ConfigError, match="base: unknown key"):
        parse_config_text(text + "<<: *base\nname: merged\n", "m.yaml")
    merged = parse_config_text("<<: {kind: tpe, arch: systolic_os, rows: 8, cols: 8, operand: {width: 8}, "
                               "k_max: 64, name: a}\nname: b\nrows: 2\n", "m.yaml")
    assert (merged.name, merged.rows, merged.cols) == ("b", 2, 8)  # explicit keys override merged ones


def test_file_errors(tmp_path):
    for path, part in [(tmp_path / "missing.yaml", "cannot read"), (tmp_path, "is a directory")]:
        with pytest.raises(ConfigError, match=part):
            load_config(path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"kind: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def test_cli_exit_code_2_and_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(_with(rows=0)))
    for argv in (["validate", str(bad)], ["generate", str(bad), "-o", str(tmp_path / "out")],
                 ["sim", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "rows: got 0; allowed: an integer from 1 to 64" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv,part", [
    (["sim", "configs/os_8x8.yaml", "--seed", "x"], "--seed: got 'x'; allowed: an integer"),
    (["sim", "configs/os_8x8.yaml", "--seed", "-1"], "--seed: got '-1'"),
    (["sim", "configs/os_8x8.yaml", "--vectors", "1e3"], "--vectors: got '1e3'"),
    (["sim", "configs/os_8x8.yaml", "--ready-prob", "0"], "--ready-prob: got '0'; allowed: a number from 0.01 to 1"),
    (["sim", "configs/os_8x8.yaml", "--valid-prob", "1e-320"], "--valid-prob: got '1e-320'"),
    (["--frob"], "unrecognized arguments: --frob"),
    (["sim", "configs/os_8x8.yaml", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["simulate"], "invalid choice: 'simulate'"),
    (["generate"], "required: CONFIG"),
    ([], "required: COMMAND"),
])
def test_cli_bad_arguments(argv, part, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and part in err, err


def test_defaults_are_filled_and_hash_ignores_key_order():
    explicit = parse_config_data({**GOOD, "acc_width": 22}, "a")
    implicit = parse_config_data(dict(reversed(list(GOOD.items()))), "b")
    assert implicit.acc_width == 22
    assert implicit.normalized() == explicit.normalized()
    assert implicit.config_hash() == explicit.config_hash()
    assert parse_config_data(_with(rows=7), "c").config_hash() != explicit.config_hash()
    assert implicit.normalized()["result_buffers"] == 2
    assert parse_config_data({**GOOD, "result_buffers": 2}, "d").config_hash() == explicit.config_hash()


def test_cube_result_rows_default_keeps_the_hash():
    cube = _with(arch="cube", depth=2)
    implicit = parse_config_data(cube, "a")
    assert implicit.result_rows == 1 and "result_rows" not in implicit.normalized()
    assert parse_config_data({**cube, "result_rows": 1}, "b").config_hash() == implicit.config_hash()
    wide = parse_config_data({**cube, "result_rows": 4}, "c")
    assert wide.normalized()["result_rows"] == 4 and wide.config_hash() != implicit.config_hash()


def test_normalised_config_lists_only_the_keys_of_its_arch():
    ws = parse_config_data(_with(arch="systolic_ws", k_max=_DROP), "ws")
    assert sorted(ws.normalized()) == ["acc_width", "arch", "cols", "kind", "name", "operand", "rows"]
    assert ws.acc_width == 19 and ws.k_bound == 8  # 8 * (-128)**2 = 2**17 needs 19 signed bits
    tree = parse_config_data(_with(arch="adder_tree", rows=_DROP, k_tile=16), "tree")
    assert "rows" not in tree.normalized() and tree.c_rows == 1 and tree.k_tile == 16


def test_operand_a_equal_to_operand_b_is_the_config_with_operand():
    """One format written twice normalises to operand: same normalised config, hash, build directory."""
    shorthand = parse_config_data(GOOD, "a")
    spelt_out = parse_config_data(_with(operand=_DROP, operand_a=dict(GOOD["operand"]),
                                        operand_b=dict(GOOD["operand"])), "b")
    assert spelt_out.normalized() == shorthand.normalized()
    assert spelt_out.config_hash() == shorthand.config_hash() and spelt_out.build_name() == shorthand.build_name()
    assert "operand_a" not in shorthand.normalized() and "operand_b" not in shorthand.normalized()
    assert (spelt_out.a_format, spelt_out.b_format) == (shorthand.operand, shorthand.operand)


def test_two_formats_keep_operand_a_and_operand_b():
    cfg = parse_config_data(_with(operand=_DROP, operand_a=S24, operand_b=S16, k_max=65536), "m")
    data = cfg.normalized()
    assert "operand" not in data
    assert (data["operand_a"], data["operand_b"]) == (S24, S16)
    assert cfg.acc_width == 56 and cfg.acc_signed  # 65536 * 2**23 * 2**15 = 2**54
    assert "24-bit signed A and 16-bit signed B operands" in cfg.describe()
    swapped = parse_config_data(_with(operand=_DROP, operand_a=S16, operand_b=S24, k_max=65536), "s")
    assert swapped.config_hash() != cfg.config_hash()
    # One side unsigned: products, accumulators and C are signed.
    pixels = parse_config_data(_with(operand=_DROP, operand_a=U8, operand_b=S16, k_max=1), "p")
    assert pixels.acc_signed and pixels.acc_width == 24
    both_unsigned = parse_config_data(_with(operand=_DROP, operand_a=U8, operand_b={"width": 12, "signed": False},
                                            k_max=1), "u")
    assert not both_unsigned.acc_signed and both_unsigned.acc_width == 20


def test_wider_accumulator_is_kept():
    assert parse_config_data(_with(acc_width=30), "a").acc_width == 30


# --- fuzzing: no input may produce anything but a ConfigError ---------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                     st.text(max_size=12))
_keys = st.one_of(st.sampled_from(list(GOOD) + ["operand", "width", "signed", "acc_width", "colz"]),
                  st.text(max_size=8), st.integers(-5, 5))
_documents = st.recursive(_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=6)), max_leaves=20)


def _mutations():
    def mutate(pair):
        key, value = pair
        data = _with()
        if key == "operand":
            data["operand"] = value
        else:
            data[key] = value
        return data
    return st.tuples(st.sampled_from(list(GOOD) + ["acc_width", "extra"]), _documents).map(mutate)


def _accept_or_config_error(parse, arg):
    try:
        cfg = parse(arg, "fuzz.yaml")
    except ConfigError as error:
        assert "\n" not in str(error)
    else:
        assert cfg.normalized()["kind"] == "tpe"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_documents, _mutations()))
def test_fuzz_structured_documents(data):
    _accept_or_config_error(parse_config_data, data)
    # ... and the same document as YAML text, where it can be dumped at all.
    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    _accept_or_config_error(parse_config_text, text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "\u00e9\u2028\x00", max_size=200))
def test_fuzz_arbitrary_text(text):
    _accept_or_config_error(parse_config_text, text)


def test_keys_with_newlines_or_dots_are_quoted_in_the_one_line_error():
    """Found by the fuzz test: a mapping key holding a newline broke the one-line rule."""
    data = {"kind": {"\n": {0: None}}, "name": "x"}
    with pytest.raises(ConfigError) as raised:
        parse_config_data(data, "bad.yaml")
    assert "\n" not in str(raised.value)
    assert "kind.'\\n'" in str(raised.value)


# --- npu_tile: checks across keys (model validators) name their field -------------------------

TILE = yaml.safe_load((Path(__file__).parent / "configs" / "npu_tile_2x3.yaml").read_text())


def _tile_with(protect=None, **changes):
    data = {**TILE, "compute": {**TILE["compute"], **changes.pop("compute", {})}, **changes}
    for key in [k for k, v in data["compute"].items() if v is None]:
        del data["compute"][key]
    if protect is not None:
        data["protect"] = protect
    return data


# (config, the field path the line must start with, substrings: the value, what is allowed)
TILE_REJECTED = [
    (_tile_with(compute={"arch": "systolic_ws", "k_max": None}), "compute.arch", ["'systolic_ws'", "allowed: "]),
    (_tile_with(compute={"arch": "cube", "depth": 4, "k_max": 3}), "compute.k_max", ["3", "allowed: k_max >= 4"]),
    (_tile_with(acc_width=5), "acc_width", ["5", "allowed: 10 to 40"]),
    (_tile_with(compute={"operand": {"width": 16, "signed": True}}, k_total_max=1 << 20), "k_total_max",
     ["1048576", "52-bit", "allowed: a smaller k_total_max"]),
    (_tile_with([{"match": "buf_c", "mechanism": "parity"}]), "protect[0].match",
     ["'buf_c'", "allowed: a pattern over the blocks buf_a"]),
    (_tile_with([{"match": "post", "mechanism": "tmr", "low": 0, "high": 3}]), "protect[0]",
     ["low 0, high 3", "'tmr'", "allowed: both with clip"]),
    (_tile_with([{"match": "post", "mechanism": "clip", "high": 3}]), "protect[0]", ["high 3", "'clip'", "allowed"]),
    (_tile_with([{"match": "ctrl", "mechanism": "tmr"}, {"match": "c*", "mechanism": "parity"}]), "protect[1]",
     ["block ctrl", "allowed: one mechanism per block"]),
    (_tile_with([{"match": "buf_a", "mechanism": "tmr"}]), "protect[0].mechanism",
     ["'tmr'", "allowed: parity, secded (what fits)"]),
    (_tile_with([{"match": "post", "mechanism": "clip", "low": -9, "high": 3}]), "protect[0].low",
     ["-9", "allowed: -8 to 7"]),
    (_tile_with([{"match": "post", "mechanism": "clip", "low": 3, "high": 2}]), "protect[0]",
     ["low 3 is above high 2", "allowed: low <= high"]),
    # Field errors inside the list of protect entries name the entry's own fields.
    (_tile_with([{"match": "post", "mechanism": "parity", "colour": 1}]), "protect[0].colour",
     ["unknown key", "allowed keys: match, mechanism, low, high"]),
    (_tile_with([{"match": "post", "mechanism": ["tmr"]}]), "protect[0].mechanism",
     ["got a list", "allowed: one of 'parity', 'secded'"]),
    (_tile_with([{"match": {"a": 1}, "mechanism": "tmr"}]), "protect[0].match", ["got a mapping", "allowed: a string"]),
    (_tile_with(["post"]), "protect[0]", ["got 'post'", "allowed: a mapping with keys match, mechanism, low, high"]),
    (_tile_with({"match": "post"}), "protect", ["got a mapping", "allowed: a list of mappings with keys match"]),
]


@pytest.mark.parametrize("data,field,parts", TILE_REJECTED, ids=[str(i) for i in range(len(TILE_REJECTED))])
def test_npu_tile_errors_name_the_field(data, field, parts, tmp_path, capsys):
    """Each check of gen/kinds/npu_tile.py, through the command line: one line that starts with the
    field path (never 'top level: got a mapping'), then the value and what is allowed."""
    path = tmp_path / "tile.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"npuforge: error: {path}: {field}"), err
    after = err.removeprefix(f"npuforge: error: {path}: {field}")
    assert after[0] in ": ", err  # the whole path, not a prefix of a longer one
    assert "top level" not in err and "Input should" not in err, err
    for part in parts:
        assert part in err, (part, err)

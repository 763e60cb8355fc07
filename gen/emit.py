"""Write generated files so that a directory is either updated completely or not at all."""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .config.base import KindConfig
from .elaborate import Elaboration, elaborate
from .errors import UsageError
from .locking import locked
from .manifest import MANIFEST_NAME, build_manifest, dump_manifest, verilog_filename
from .toolchain import tool_versions

#: The packages whose files shape generated Verilog (the generators and the config, elaboration and
#: manifest code); their content is part of :func:`generator_fingerprint`.
GENERATOR_PACKAGES = ("hw", "gen")
FINGERPRINT_NAME = ".generated"


@dataclass
class Generated:
    out_dir: Path
    files: list[Path]
    manifest: dict
    elaboration: Elaboration


def _previous_outputs(out_dir: Path) -> set[str]:
    """HDL files an earlier ``npuforge generate`` wrote into ``out_dir``, from its manifest.

    Only a manifest npuforge wrote counts, and only plain ``.v`` names inside the
    directory: a hand-made or foreign ``manifest.json`` can never delete anything
    else.
    """
    try:
        previous = json.loads((out_dir / MANIFEST_NAME).read_text())
        if not isinstance(previous, dict) or "npuforge" not in previous or "format" not in previous:
            return set()
        names = {entry["path"] for entry in previous["files"]}
    except (OSError, ValueError, TypeError, KeyError):
        return set()
    return {name for name in names
            if isinstance(name, str) and name.endswith((".v", ".rdl", ".h")) and Path(name).name == name
            and not name.startswith(".")}


def write_files(out_dir: Path, files: dict[str, str]) -> list[Path]:
    """Write ``{name: text}`` into ``out_dir`` via a sibling temp dir, then move them in.

    Nothing appears in ``out_dir`` unless every file was written. Files that an
    earlier generation listed in its manifest and this one does not are removed,
    so a directory never mixes two designs.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o: got '{out_dir}', which is a file; allowed: a directory (new or existing)")
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
        # mkdtemp makes the directory private (0700); the output is an ordinary directory.
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
    except OSError as error:
        raise UsageError(f"-o: got '{out_dir}'; cannot create it: {error.strerror}") from None
    try:
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8", newline="\n")
        if not out_dir.exists():
            staging.rename(out_dir)
        else:
            stale = _previous_outputs(out_dir) - set(files)
            for name in files:
                os.replace(staging / name, out_dir / name)
            for name in stale:
                (out_dir / name).unlink(missing_ok=True)
    except OSError as error:
        raise UsageError(f"-o: got '{out_dir}'; cannot write into it: {error.strerror}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out_dir / name for name in files]


def generate(cfg: KindConfig, out_dir: Path) -> Generated:
    """Elaborate ``cfg`` and write ``<top>.v`` and ``manifest.json`` into ``out_dir``."""
    elab = elaborate(cfg)
    manifest = build_manifest(elab)
    paths = write_files(out_dir, {
        verilog_filename(elab.top): elab.verilog,
        **elab.files,
        MANIFEST_NAME: dump_manifest(manifest),
    })
    return Generated(out_dir=Path(out_dir), files=paths, manifest=manifest, elaboration=elab)


def generator_fingerprint(cfg: KindConfig) -> str:
    """What ``cfg``'s generated files depend on: every file of the generator packages (``hw/``, ``gen/``),
    the versions of the tools that shape the output, and the normalised config (with a model's content)."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in GENERATOR_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(json.dumps(tool_versions(), sort_keys=True).encode())
    digest.update(cfg.config_hash().encode())
    return digest.hexdigest()


def generate_once(cfg: KindConfig, out_dir: Path) -> dict:
    """:func:`generate` into ``out_dir`` unless the files there came from the same generator and config
    (:func:`generator_fingerprint`, kept in ``.generated``); the manifest either way. Elaborating the
    accelerator takes tens of seconds and every test of a design calls this, hence the cache. The caller
    holds the directory's lock; a generator patched at run time (a test) needs a fresh ``out_dir``."""
    out_dir = Path(out_dir)
    fingerprint = generator_fingerprint(cfg)
    stamp = out_dir / FINGERPRINT_NAME
    try:
        if stamp.read_text() == fingerprint:
            return json.loads((out_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        pass
    stamp.unlink(missing_ok=True)
    manifest = generate(cfg, out_dir).manifest
    stamp.write_text(fingerprint)
    return manifest


def generate_in_build(cfg: KindConfig, build_root: Path) -> tuple[Path, dict]:
    """``cfg``'s generated files in its build directory, ``<build_root>/<name>-<hash12>/rtl``
    (:func:`generate_once` under the directory's lock): the directory and the manifest. Every command
    that needs a config's Verilog (``sim``, ``run``, ``synth``, ``fpga``) reads it from here, so a
    design is elaborated once per generator and config however many commands use it."""
    root = Path(build_root) / cfg.build_name()
    with locked(root.with_name(root.name + ".lock")):
        return root / "rtl", generate_once(cfg, root / "rtl")

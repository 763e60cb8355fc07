"""One SQLite file per campaign: its facts (meta) and one row per finished injection.

The file is in WAL mode and every batch of results is one transaction, so a
campaign killed at any moment (SIGKILL included) leaves exactly the batches that
committed; resuming skips their indices (:meth:`CampaignStore.done_indices`) and
runs the rest. The fault ``index`` is the primary key: storing an index again is
accepted only with an identical row (a resumed run recomputing a batch), while a
different result for a stored index is an error, never silently kept or replaced.

The meta table holds, as JSON, what the rows mean: the campaign config, the
design config, manifest and hash, the fault-free reference, the window and the
population. Opening an existing file for a campaign whose facts differ is refused
with one line, so one file never mixes two campaigns.

Format 1 files (written before the engine watched for output beats after the
expected ones) have no ``extra_beats`` column: they stay readable (their rows read
with ``extra_beats = 0``, :attr:`CampaignStore.watched_tail` is false) but are not
resumed.
"""

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gen.config.messages import show_path, show_value
from gen.errors import ConfigError, NpuforgeError

from .model import Fault, FaultModel, InjectionResult, Outcome

#: Version of the table layout; a file of another version is not resumed (format 1 is still read).
STORE_FORMAT = 2
#: The format before ``extra_beats``: its runs stopped at the last expected beat.
UNWATCHED_TAIL_FORMAT = 1

#: Meta keys every store has (the contract with ``sim/fault/report.py``).
META_KEYS = ("config", "design", "design_hash", "manifest", "reference", "window", "population",
             "fit_per_bit", "target_asil")

#: Meta keys that must be equal to resume: the rows depend on them. The campaign ``config``
#: is compared key by key (its ``design`` path excepted: the design is compared by hash).
IDENTITY_KEYS = ("format", "design_hash", "engine", "window", "population", "strata", "reference")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE injections (
    idx INTEGER PRIMARY KEY,       -- Fault.index: position in the campaign's sample
    model TEXT NOT NULL,           -- seu, mbu, mem_seu
    site TEXT NOT NULL,            -- manifest fault-site path
    bit INTEGER NOT NULL,          -- first flipped bit
    word INTEGER,                  -- memory word (mem_seu), NULL for registers
    width INTEGER NOT NULL,        -- flipped bits
    cycle INTEGER NOT NULL,        -- injection cycle (0 = first cycle after reset)
    outcome TEXT NOT NULL,         -- masked, sdc, detected, corrected, hang
    differing INTEGER NOT NULL,    -- output elements that differ from the reference
    max_abs_diff NOT NULL,         -- largest absolute difference (untyped: may exceed 64 bits)
    cycles INTEGER NOT NULL,       -- cycles the faulty run took
    alarms TEXT NOT NULL,          -- JSON list of the alarm outputs that rose
    extra_beats INTEGER NOT NULL   -- output beats after the expected ones (format 2 on)
);
"""

_COLUMNS = "idx, model, site, bit, word, width, cycle, outcome, differing, max_abs_diff, cycles, alarms, extra_beats"
#: What a format 1 file is read with: it has no extra_beats column (its runs did not look for extra beats).
_FORMAT_1_COLUMNS = _COLUMNS.replace("extra_beats", "0")


class StoreError(NpuforgeError):
    """The database holds a result that contradicts a new one (the engine is not deterministic)."""


def _to_row(result: InjectionResult) -> tuple:
    fault = result.fault
    diff = result.max_abs_diff
    # SQLite integers are 64-bit; a wider difference (64-bit accumulators) is stored as decimal text.
    stored_diff = diff if -(2**63) <= diff < 2**63 else str(diff)
    return (fault.index, fault.model.value, fault.site, fault.bit, fault.word, fault.width, fault.cycle,
            result.outcome.value, result.differing, stored_diff, result.cycles, json.dumps(list(result.alarms)),
            result.extra_beats)


def _from_row(row: tuple) -> InjectionResult:
    idx, model, site, bit, word, width, cycle, outcome, differing, diff, cycles, alarms, extra = row
    fault = Fault(index=idx, model=FaultModel(model), site=site, bit=bit, cycle=cycle, word=word, width=width)
    return InjectionResult(fault=fault, outcome=Outcome(outcome), differing=differing, max_abs_diff=int(diff),
                           cycles=cycles, alarms=tuple(json.loads(alarms)), extra_beats=extra)


def _first_difference(old: Any, new: Any, path: tuple = ()) -> tuple[tuple, Any, Any] | None:
    """Path and both values of the first place where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in list(old) + [k for k in new if k not in old]:
            found = _first_difference(old.get(key), new.get(key), path + (key,))
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new)):
            found = _first_difference(a, b, path + (index,))
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


def _json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True))


class CampaignStore:
    """A campaign's SQLite file. Use :meth:`open`; close it (or use ``with``) when done."""

    def __init__(self, path: Path, connection: sqlite3.Connection):
        self.path = path
        self._db = connection
        self._columns = _COLUMNS

    @property
    def watched_tail(self) -> bool:
        """Whether the rows counted output beats after the expected ones (false for format 1 files)."""
        return self._columns == _COLUMNS

    @classmethod
    def open(cls, path: Path, *, create: dict | None = None) -> "CampaignStore":
        """Open the store at ``path``.

        With ``create`` (the meta: at least :data:`META_KEYS`), a missing or empty file is
        created with that meta, and an existing one must hold the same campaign: the same
        config (its ``design`` path aside), design hash, window, population, strata and
        reference, or a one-line :class:`ConfigError` says what differs. Without
        ``create`` the file must exist (for reading the results).
        """
        path = Path(path)
        if create is None and not path.is_file():
            raise ConfigError(f"{path}: no such campaign database; allowed: a file written by 'npuforge inject'")
        if create is not None:
            missing = [key for key in META_KEYS if key not in create]
            if missing:
                raise ValueError(f"campaign meta lacks {', '.join(missing)}")
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE ... COMMIT).
            db = sqlite3.connect(path, isolation_level=None, timeout=30)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as error:
            raise ConfigError(f"{path}: not a campaign database ({error}); allowed: a file written by "
                              "'npuforge inject', or a new path") from None
        store = cls(path, db)
        try:
            if not tables and create is not None:
                store._create(create)
            elif tables != {"meta", "injections"}:
                raise ConfigError(f"{path}: not a campaign database (tables: {', '.join(sorted(tables)) or 'none'}); "
                                  "allowed: a file written by 'npuforge inject', or a new path")
            else:
                columns = {row[1] for row in db.execute("PRAGMA table_info(injections)")}
                if "extra_beats" not in columns:
                    store._columns = _FORMAT_1_COLUMNS
                if create is not None:
                    store._check_same_campaign(create)
            db.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable against a killed process in WAL mode (only a power loss can drop
            # the last commits, which a resume then recomputes).
            db.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            db.close()
            raise
        return store

    def _create(self, meta: dict) -> None:
        meta = {"format": STORE_FORMAT, **meta}
        self._db.execute("PRAGMA journal_mode = WAL")
        # One transaction: a kill during creation leaves an empty file, which the next run recreates.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                 [(key, json.dumps(value, sort_keys=True)) for key, value in meta.items()])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _check_same_campaign(self, meta: dict) -> None:
        stored = self.meta()
        if stored.get("format") != STORE_FORMAT:
            raise ConfigError(f"{self.path}: format: got {show_value(stored.get('format'))} (a database written "
                              "before the engine looked for output beats after the expected ones), which is not "
                              f"resumed; allowed: format {STORE_FORMAT}, or a new --db ('npuforge report' still "
                              "reads this one)")
        new = {"format": STORE_FORMAT, **_json(meta)}
        where = f"{self.path} holds another campaign"
        old_config = {k: v for k, v in stored.get("config", {}).items() if k != "design"}
        old_config.setdefault("level", "rtl")  # written before campaigns had a level: RTL
        new_config = {k: v for k, v in new["config"].items() if k != "design"}
        found = _first_difference(old_config, new_config)
        if found:
            loc, old, value = found
            raise ConfigError(f"{show_path(loc)}: got {show_value(value)}, but {where} with {show_value(old)}; "
                              "allowed: the same config to resume, or a new --db")
        for key in IDENTITY_KEYS:
            found = _first_difference(stored.get(key), new.get(key), (key,))
            if found:
                loc, old, value = found
                what = {"design_hash": "the design changed (config or Verilog)",
                        "engine": "the injection engine changed (harness sources or Verilator)"}.get(
                    key, f"{show_path(loc)} differs: {show_value(old)} stored, {show_value(value)} now")
                raise ConfigError(f"{where}: {what}; allowed: the same design and campaign to resume, "
                                  "or a new --db")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "CampaignStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def meta(self) -> dict:
        """Every meta entry, decoded from JSON (see :data:`META_KEYS`)."""
        return {key: json.loads(value) for key, value in self._db.execute("SELECT key, value FROM meta")}

    def done_indices(self) -> set[int]:
        return {row[0] for row in self._db.execute("SELECT idx FROM injections")}

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM injections").fetchone()[0]

    def outcome_counts(self) -> Counter:
        """Stored injections per outcome (every outcome present, zeros included)."""
        counts = Counter({outcome.value: 0 for outcome in Outcome})
        counts.update(dict(self._db.execute("SELECT outcome, COUNT(*) FROM injections GROUP BY outcome")))
        return counts

    def results(self) -> Iterator[InjectionResult]:
        """Every stored injection, ordered by fault index."""
        for row in self._db.execute(f"SELECT {self._columns} FROM injections ORDER BY idx"):
            yield _from_row(row)

    def add(self, results: Iterable[InjectionResult]) -> int:
        """Store ``results`` in one transaction; returns how many rows are new.

        A result whose index is stored already must equal the stored row, or
        :class:`StoreError` is raised and nothing of this batch is written.
        """
        if not self.watched_tail:
            raise StoreError(f"{self.path}: a format {UNWATCHED_TAIL_FORMAT} database is only read, never added to")
        rows = [_to_row(result) for result in results]
        added = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                cursor = self._db.execute(
                    f"INSERT INTO injections ({_COLUMNS}) VALUES ({', '.join('?' * len(row))}) "
                    "ON CONFLICT (idx) DO NOTHING", row)
                if cursor.rowcount == 1:
                    added += 1
                    continue
                stored = self._db.execute(f"SELECT {self._columns} FROM injections WHERE idx = ?",
                                          (row[0],)).fetchone()
                if _from_row(stored) != _from_row(row):
                    raise StoreError(f"{self.path}: injection {row[0]} is stored as {_from_row(stored)} but was "
                                     f"recomputed as {_from_row(row)}; the results are not reproducible")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return added

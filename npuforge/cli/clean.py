"""``npuforge clean [--older-than DAYS] [--dry-run] [--databases]``: remove build artefacts.

Harness builds, Verilator models, synthesis caches, simulation runs and campaign scratch under
the build root (``sim/artefacts.py`` knows the layout) that were not used for ``DAYS`` days; every
one is rebuilt by the command that needs it. Campaign databases hold results: they go only with
``--databases``. Prints each artefact removed and a summary with the sizes.
"""

import argparse
import math
import time
from collections import Counter
from pathlib import Path

from gen.errors import UsageError
from sim import artefacts
from sim.runner import DEFAULT_BUILD_ROOT

HELP = "remove build artefacts (harness builds, Verilator models, synthesis caches, scratch) unused for DAYS days"


def days(text: str) -> float:
    """``--older-than``: a number of days >= 0 (fractions allowed)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: a number of days >= 0")
    return value


def add_arguments(parser) -> None:
    parser.add_argument("--older-than", type=days, default=0.0, metavar="DAYS",
                        help="only artefacts last used more than DAYS days ago (default 0: every artefact)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    parser.add_argument("--databases", action="store_true",
                        help="also campaign databases (build/campaigns/*.sqlite: results, not caches)")
    parser.add_argument("--build-dir", type=Path, default=None, metavar="DIR", help="build root (default build/)")


def size_text(size: int) -> str:
    """``2.6 MB``: bytes in decimal units, one decimal from kB on."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _summary(found: list) -> str:
    """``3 artefacts, 7.9 MB (harness build 3, 7.8 MB; ...)``."""
    counts, sizes = Counter(a.what for a in found), Counter()
    for artefact in found:
        sizes[artefact.what] += artefact.size
    parts = "; ".join(f"{what} {counts[what]}, {size_text(sizes[what])}" for what in sorted(counts))
    total = f"{len(found)} artefact{'s' if len(found) != 1 else ''}, {size_text(sum(sizes.values()))}"
    return f"{total} ({parts})" if found else total


def run(args) -> int:
    root = args.build_dir or DEFAULT_BUILD_ROOT
    if not root.is_dir():
        if args.build_dir is not None:
            raise UsageError(f"--build-dir: got '{root}', which is not a directory; allowed: a build root")
        print(f"build    {root} does not exist: nothing to remove")
        return 0
    now = time.time()
    found = artefacts.scan(root, databases=args.databases)
    chosen = artefacts.older_than(found.artefacts, args.older_than, now)
    verb = "would remove" if args.dry_run else "removed"
    when = f"last used more than {args.older_than:g} days ago" if args.older_than else "every artefact"
    print(f"build    {root} ({when}{'; dry run' if args.dry_run else ''})")
    done, busy = [], []
    for artefact in chosen:
        if args.dry_run or artefacts.remove(artefact):
            done.append(artefact)
            print(f"{verb:12} {artefact.what:24} {size_text(artefact.size):>9}  "
                  f"{artefact.age_days(now):6.1f} days  {artefact.path}", flush=True)
        else:
            busy.append(artefact)
    print(f"{verb:12} {_summary(done)}")
    recent = [a for a in found.artefacts if a not in chosen]
    if recent:
        print(f"kept         {_summary(recent)}: used in the last {args.older_than:g} days")
    for artefact in busy:
        print(f"kept         {artefact.what} {artefact.path}: being built (its lock is held)")
    if not args.databases:
        databases = artefacts.databases_in(root)
        if databases:
            print(f"kept         {_summary(databases)}: results; --databases removes them")
    if found.unknown:
        shown = ", ".join(str(path) for path in found.unknown[:5]) + (", ..." if len(found.unknown) > 5 else "")
        print(f"left alone   {len(found.unknown)} not a build artefact: {shown}")
    return 0

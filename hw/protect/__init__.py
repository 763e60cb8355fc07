"""Protection library: error detecting and correcting mechanisms as small components.

* :mod:`.parity` -- even parity (detect single errors);
* :mod:`.secded` -- extended Hamming code for any data width >= 2 (correct single, detect double);
* :mod:`.replicate` -- TMR majority :class:`Voter` with a disagreement flag, DMR :class:`Comparator`;
* :mod:`.residue` -- mod-3 residues and checkers for multiply-accumulate paths;
* :mod:`.abft` -- checksum row and column for a GEMM tile and a checker that locates and corrects one wrong element;
* :mod:`.clip` -- activation range clipping with an out-of-range flag;
* :mod:`.registers` -- the hook generators call to make a register group or memory word protected.

:data:`MECHANISMS` tells what each mechanism can do and where it fits; the
protection config, the generator and the optimiser read it instead of repeating it.
"""

from dataclasses import dataclass

from .abft import AbftChecker, AbftEncoder, AbftRowChecker
from .clip import Clip
from .parity import ParityChecker, ParityEncoder
from .registers import (
    ALARMS,
    REGISTER_MECHANISMS,
    WORD_MECHANISMS,
    ProtectedRegister,
    WordDecoder,
    WordEncoder,
    protected_register,
    register_names,
    stored_width,
)
from .replicate import Comparator, Voter
from .residue import MacResidueChecker, MacResidueShadow, Mod3Residue, residue_mod3
from .secded import SecdedDecoder, SecdedEncoder, code_width

#: the kinds of protectable blocks (a manifest's ``protectable[].kind``).
BLOCK_KINDS = ("registers", "memory", "compute", "activation")


@dataclass(frozen=True)
class Mechanism:
    """What one mechanism does and where it fits.

    ``corrects``: it restores the right value of a single upset (SECDED, TMR,
    ABFT); ``detects``: it raises an alarm on an error; ``min_width``: the
    narrowest value it protects; ``applies_to``: block kinds it fits.
    """

    name: str
    corrects: bool
    detects: bool
    min_width: int
    applies_to: tuple[str, ...]
    summary: str

    def fits(self, kind: str, width: int) -> bool:
        return kind in self.applies_to and width >= self.min_width

    def added_bits(self, width: int) -> int | None:
        """Storage bits the mechanism adds to a ``width``-bit register or word (None: not a storage code)."""
        if self.name not in REGISTER_MECHANISMS:
            return None
        return stored_width(width, self.name) - width


MECHANISMS: dict[str, Mechanism] = {mechanism.name: mechanism for mechanism in (
    Mechanism("parity", corrects=False, detects=True, min_width=1, applies_to=("registers", "memory"),
              summary="one even parity bit per word; detects every odd number of flips"),
    Mechanism("secded", corrects=True, detects=True, min_width=2, applies_to=("registers", "memory"),
              summary="extended Hamming code; corrects one flip, detects two"),
    Mechanism("dmr", corrects=False, detects=True, min_width=1,
              applies_to=("registers", "compute", "activation"),
              summary="two copies and a comparator; detects any difference"),
    Mechanism("tmr", corrects=True, detects=True, min_width=1,
              applies_to=("registers", "compute", "activation"),
              summary="three copies and a bitwise majority voter; masks one bad copy and reports it"),
    Mechanism("residue", corrects=False, detects=True, min_width=2, applies_to=("compute",),
              summary="mod-3 residue shadow of multiply-accumulate; detects every single-bit error"),
    Mechanism("abft", corrects=True, detects=True, min_width=2, applies_to=("compute",),
              summary="checksum row and column of a GEMM tile; locates and corrects one wrong element"),
    Mechanism("clip", corrects=False, detects=True, min_width=2, applies_to=("activation",),
              summary="clamps activations to configured bounds and flags values outside them"),
)}


def mechanisms_for(kind: str, width: int) -> tuple[str, ...]:
    """Names of the mechanisms that fit a block of ``kind`` whose narrowest value has ``width`` bits."""
    if kind not in BLOCK_KINDS:
        raise ValueError(f"kind: {kind!r} is not one of {', '.join(BLOCK_KINDS)}")
    return tuple(name for name, mechanism in MECHANISMS.items() if mechanism.fits(kind, width))


__all__ = [
    "ALARMS", "BLOCK_KINDS", "MECHANISMS", "REGISTER_MECHANISMS", "WORD_MECHANISMS",
    "AbftChecker", "AbftEncoder", "AbftRowChecker", "Clip", "Comparator", "MacResidueChecker", "MacResidueShadow",
    "Mechanism", "Mod3Residue", "ParityChecker", "ParityEncoder", "ProtectedRegister",
    "SecdedDecoder", "SecdedEncoder", "Voter", "WordDecoder", "WordEncoder",
    "code_width", "mechanisms_for", "protected_register", "register_names", "residue_mod3",
    "stored_width",
]

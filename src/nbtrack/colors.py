"""Each run's colour: a stable hash of its run id into one categorical palette.

Every view of a run (its card, the run table, curves, comparisons, and any later view)
takes the colour from :func:`run_color`, so a run keeps one colour wherever it appears,
whatever else is shown beside it. The panels' pages never compute a colour: the kernel
sends it with the run.
"""

from __future__ import annotations

from collections.abc import Sequence

# Tableau 10: strong categorical colours that stay apart on white (and in Vega's defaults).
# Ten colours make a shared colour likely among a few runs (28% for three), so charts tell
# such runs apart by dashes (DASHES) rather than by giving one of them another colour.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
# Lines of runs that share a colour in one chart: the first solid, the next ones dashed.
DASHES = ([1, 0], [6, 3], [2, 2], [8, 2, 2, 2])

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def run_color(run_id: str) -> str:
    """The run's colour: :func:`run_hash` of its id, modulo the palette."""
    return PALETTE[run_hash(run_id) % len(PALETTE)]


def run_hash(text: str) -> int:
    """FNV-1a (32 bit) of the UTF-8 bytes, then MurmurHash3's finalizer.

    FNV-1a alone is a poor choice modulo a small number: its low bits follow the parity
    of the input's bytes (every hex run id of the same length ended on one colour of ten).
    The finalizer spreads every input bit over the low bits. Both are a few lines in any
    language, so a page or another tool can compute the same colour.
    """
    digest = _FNV_OFFSET
    for byte in text.encode("utf-8"):
        digest = ((digest ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    digest ^= digest >> 16
    digest = (digest * 0x85EBCA6B) & 0xFFFFFFFF
    digest ^= digest >> 13
    digest = (digest * 0xC2B2AE35) & 0xFFFFFFFF
    return digest ^ (digest >> 16)


def dashes(colors: Sequence[str]) -> list[list[int]]:
    """A stroke dash per line, so lines that share a colour in one chart stay apart."""
    seen: dict[str, int] = {}
    out = []
    for color in colors:
        count = seen[color] = seen.get(color, -1) + 1
        out.append(DASHES[count % len(DASHES)])
    return out

"""Game names of a stream: one spelling per game, and a comma list parsed into a stream order.
Shared by the Atari and MinAtar streams."""
from __future__ import annotations

from typing import Sequence


def canonical(name: str, games: Sequence[str], what: str = "game") -> str:
    """Canonical spelling of one of ``games``; case, '_' and '-' are ignored."""
    key = name.strip().replace("_", "").replace("-", "").lower()
    for g in games:
        if g.lower() == key:
            return g
    raise ValueError(f"unknown {what} {name!r}; valid games are: {', '.join(games)}")


def parse(spec: str | Sequence[str] | None, games: Sequence[str],
          what: str = "game") -> list[str]:
    """'A,B' (or a list) -> ['A', 'B'] in canonical spelling; None -> all of ``games``. An
    empty name (e.g. '' or 'A,,B') or a game listed twice is an error."""
    if spec is None:
        return list(games)
    parts = [str(p).strip() for p in (spec.split(",") if isinstance(spec, str) else spec)]
    if not parts or not all(parts):
        raise ValueError(f"games {spec!r}: an empty game name; give comma-separated games "
                         f"from: {', '.join(games)}")
    out = [canonical(p, games, what) for p in parts]
    dup = sorted({g for g in out if out.count(g) > 1})
    if dup:
        raise ValueError(f"game(s) listed twice: {', '.join(dup)}")
    return out

"""Medians and spreads over the runs of one cell (row, N, L)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

Key = Tuple[str, int, float]  # row, N, L (seconds)


@dataclass
class Cell:
    row: str
    n: int
    latency: float
    runs: int
    failed: int
    switched: List[float]  # seconds, of the runs that switched every table
    exit: List[float]
    first_ec2: List[float]
    calls: List[int]
    connections: List[int]
    round_trips: List[int]
    no_route: List[float]
    rss_mb: List[float]

    @property
    def median(self) -> float:
        return statistics.median(self.switched) if self.switched else float("nan")

    @property
    def spread(self) -> Tuple[float, float]:
        return (min(self.switched), max(self.switched)) if self.switched else (0.0, 0.0)


def cells(results: Iterable[Dict[str, Any]]) -> Dict[Key, Cell]:
    found: Dict[Key, Cell] = {}
    for r in results:
        key = (r["row"], int(r["n"]), float(r["latency"]))
        cell = found.setdefault(
            key, Cell(key[0], key[1], key[2], 0, 0, [], [], [], [], [], [], [], [])
        )
        cell.runs += 1
        if not r["ok"] or r["switched_s"] is None:
            cell.failed += 1
            continue
        cell.switched.append(r["switched_s"])
        cell.exit.append(r["exit_s"])
        if r["first_ec2_s"] is not None:
            cell.first_ec2.append(r["first_ec2_s"])
        cell.calls.append(r["calls"])
        cell.connections.append(r["connections"])
        cell.round_trips.append(r["round_trips"])
        cell.no_route.append(r["no_route_s"])
        cell.rss_mb.append(r["rss_mb"])
    return found


def med(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def ratio(found: Dict[Key, Cell], row: str, other: str, n: int, latency: float) -> Optional[float]:
    a, b = found.get((row, n, latency)), found.get((other, n, latency))
    if not a or not b or not a.switched or not b.switched:
        return None
    return a.median / b.median


def table(found: Dict[Key, Cell]) -> str:
    """A plain-text overview, for a terminal."""
    lines = [
        f"{'row':12} {'N':>3} {'L ms':>5} {'switch':>7} {'min':>6} {'max':>6} {'exit':>6} "
        f"{'1st':>5} {'calls':>5} {'rt':>3} {'noroute':>7} {'MB':>4} fail"
    ]
    for (row, n, latency), c in sorted(
        found.items(), key=lambda kv: (kv[0][2], kv[0][1], kv[0][0])
    ):
        lo, hi = c.spread
        lines.append(
            f"{row:12} {n:3} {latency * 1000:5.0f} {c.median:7.3f} {lo:6.3f} {hi:6.3f} "
            f"{med(c.exit) or 0:6.3f} {med(c.first_ec2) or 0:5.3f} {max(c.calls, default=0):5} "
            f"{max(c.round_trips, default=0):3} {max(c.no_route, default=0) * 1000:7.1f} "
            f"{med(c.rss_mb) or 0:4.0f} {c.failed}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    data = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(table(cells(data["runs"] if isinstance(data, dict) else data)))

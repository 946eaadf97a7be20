"""Where a fresh process's time goes before its first EC2 request.

Two measurements, at L = 0 (nothing waits on the fake AWS):
- the product's own cold claim through procs/phases.py, which wraps a few functions to record
  when they ran; the first EC2 connection comes from the fake AWS's record;
- `python -X importtime` of what the bridge imports: the biggest imports, by cumulative time.
Plus two reference points: an empty interpreter (`python -c pass`) and the limit row's first
EC2 connection (boto3 imported, a client made, nothing else).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from . import measure, rows
from .vpc import Vpc

MAIN_IMPORT = "import mirror_vip.bridge, mirror_vip.api"
_IMPORTTIME = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass
class ColdStart:
    runs: int
    phases: List[Tuple[str, float, float, float]]  # label, from, to, total duration (ms)
    first_ec2_ms: float  # ours: process start to the first EC2 connection
    claim_done_ms: float  # ours: process start to bridge.claim's return
    empty_ms: float  # python -c pass, start to exit
    imports: List[Tuple[str, float]] = field(default_factory=list)  # module, cumulative ms


def measure_phases(bench: rows.Bench, net: Vpc, runs: int) -> ColdStart:
    """RUNS cold claims (describe path) with their phases; medians over the runs."""
    per_label: Dict[str, List[Tuple[float, float, float]]] = {}
    firsts: List[float] = []
    dones: List[float] = []
    script = str(measure.REPO / "bench" / "procs" / "phases.py")
    argv = [measure.python(), script, *rows.bridge_argv(bench)[4:]]
    for _ in range(runs):
        bench.cache_file.unlink(missing_ok=True)
        rows.prepare(bench, net)
        done = bench.launcher.spawn(argv, bench.env())
        lines = done.stdout.splitlines()
        if done.returncode != 0 or len(lines) < 2:
            raise RuntimeError(f"phases run failed: {measure.tail(done.stdout + done.stderr)}")
        data = json.loads(lines[1])
        t0 = done.started
        spans: Dict[str, List[Tuple[float, float]]] = {
            "interpreter start": [(t0, data["script_start"])]
        }
        for label, _thread, began, ended in data["spans"]:
            spans.setdefault(label, []).append((began, ended))
        for label, found in spans.items():
            first = min(b for b, _ in found) - t0
            last = max(e for _, e in found) - t0
            total = sum(e - b for b, e in found)
            per_label.setdefault(label, []).append((first, last, total))
        connections = bench.aws.connections(since=t0)
        if connections:
            firsts.append(min(c.opened for c in connections) - t0)
        claim = [e for label, _t, _b, e in data["spans"] if label == "bridge.claim"]
        if claim:
            dones.append(claim[0] - t0)
    phases = []
    for label, values in per_label.items():
        if label == "bridge.claim":
            continue
        phases.append(
            (
                label,
                1000 * statistics.median(v[0] for v in values),
                1000 * statistics.median(v[1] for v in values),
                1000 * statistics.median(v[2] for v in values),
            )
        )
    phases.sort(key=lambda p: (p[1], p[2]))
    return ColdStart(
        runs=runs,
        phases=phases,
        first_ec2_ms=1000 * statistics.median(firsts) if firsts else float("nan"),
        claim_done_ms=1000 * statistics.median(dones) if dones else float("nan"),
        empty_ms=empty_interpreter_ms(bench, runs),
    )


def empty_interpreter_ms(bench: rows.Bench, runs: int) -> float:
    times = []
    for _ in range(runs):
        done = bench.launcher.spawn([measure.python(), "-c", "pass"], bench.env())
        times.append(done.exited - done.started)
    return 1000 * statistics.median(times)


def import_times(bench: rows.Bench, runs: int = 3, top: int = 7) -> List[Tuple[str, float]]:
    """Import time by top-level package: the sum of each module's own (self) time, so the
    parts add up to the whole (importtime's cumulative figures charge a shared dependency to
    whichever module happened to import it first). Medians over RUNS, in ms, biggest first."""
    found: Dict[str, List[float]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [measure.python(), "-X", "importtime", "-c", MAIN_IMPORT],
            capture_output=True,
            text=True,
            env=bench.env(),
            timeout=60,
            check=True,
        )
        totals: Dict[str, float] = {}
        for module, _parent, own, _cumulative in _parse(done.stderr):
            package = module.split(".")[0]
            totals[package] = totals.get(package, 0.0) + own / 1000
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])
        kept = dict(ranked[:top])
        kept["everything else (stdlib and small packages)"] = sum(v for _, v in ranked[top:])
        kept["total"] = sum(totals.values())
        for package, ms in kept.items():
            found.setdefault(package, []).append(ms)
    tail = ("everything else (stdlib and small packages)", "total")
    ranked = sorted(
        ((p, statistics.median(v)) for p, v in found.items() if p not in tail),
        key=lambda pv: -pv[1],
    )
    return ranked[:top] + [(p, statistics.median(found[p])) for p in tail if p in found]


Entry = Tuple[str, Optional[str], int, int]  # module, parent, self us, cumulative us


def _parse(text: str) -> List[Entry]:
    """importtime's lines as (module, the module that imported it, self, cumulative)."""
    lines: List[Tuple[int, str, int, int]] = []
    for line in text.splitlines():
        m = _IMPORTTIME.match(line)
        if m:
            lines.append((len(m.group(3)) // 2, m.group(4), int(m.group(1)), int(m.group(2))))
    # importtime prints children before their parent: walk backwards to know the parent
    entries: List[Entry] = []
    stack: List[Tuple[int, str]] = []
    for depth, module, own, cumulative in reversed(lines):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        entries.append((module, stack[-1][1] if stack else None, own, cumulative))
        stack.append((depth, module))
    return entries

"""python -m bench (`make bench`): the grid, a supplement with connection set-up's round trips
not charged, the cold-start breakdown, then docs/benchmarks.md and docs/benchmarks.png.

    python -m bench [--runs 5] [--latencies 0,20,50] [--tables 1,2,4,8,16,32]
    python -m bench --render .bench/results.json     (the page again from saved figures)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List

from sim.fakeaws import FakeAws
from sim.imds import ImdsEmulator

from . import coldstart, doc, rows, text, vpc
from .measure import REPO, Figures, Launcher

DOC = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks.png"
RAW = REPO / ".bench" / "results.json"
SLOW_ROW = "baseline"  # one round trip per call, 2N + 2 calls: the slowest row by far
COLDSTART_RUNS = 7


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--runs", type=int, default=7, help="runs per cell")
    parser.add_argument(
        "--slow-runs", type=int, default=3, help="runs per cell of the baseline at N >= 16"
    )
    parser.add_argument("--latencies", default="0,20,50", help="ms per EC2 call, comma-separated")
    parser.add_argument("--tables", default="1,2,4,8,16,32", help="route-table counts")
    parser.add_argument("--rows", default=",".join(rows.ROWS))
    parser.add_argument("--raw", default=str(RAW), help="where the figures are saved")
    parser.add_argument("--render", metavar="RAW", help="only write the page from saved figures")
    parser.add_argument("--no-doc", action="store_true", help="measure, do not write the page")
    args = parser.parse_args(argv)
    if args.render:
        write(json.loads(Path(args.render).read_text(encoding="utf-8")))
        return 0
    data = measure(args)
    raw = Path(args.raw)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(data, indent=1), encoding="utf-8")
    failed = [r for r in data["runs"] if not r["ok"]]
    for r in failed:
        print(f"FAILED {r['row']} N={r['n']} L={r['latency']}: {r['note']}", file=sys.stderr)
    if not args.no_doc:
        write(data)
    print(
        f"{len(data['runs'])} runs in {data['meta']['duration_s']:.0f}s -> {raw}", file=sys.stderr
    )
    return 1 if failed else 0


def measure(args: argparse.Namespace) -> Dict[str, Any]:
    latencies = [int(x) / 1000 for x in args.latencies.split(",")]
    counts = [int(x) for x in args.tables.split(",")]
    chosen = [r.strip() for r in args.rows.split(",")]
    began = time.monotonic()
    runs: List[Figures] = []
    supplement: List[Figures] = []
    aws = FakeAws(seed=5).start()
    try:
        with tempfile.TemporaryDirectory(prefix="mvip-bench-") as work:
            vpcs = {n: vpc.build(aws, n, i) for i, n in enumerate(counts)}
            imds = ImdsEmulator(vpcs[counts[0]].identity)
            imds.start()
            bench = rows.Bench(aws, imds, Path(work), Launcher(Path(work)))
            try:
                for latency in latencies:
                    rows.set_latency(aws, latency)
                    for n in counts:
                        bench.use(vpcs[n])
                        for i in range(args.runs):
                            for row in chosen:
                                if row == SLOW_ROW and n >= 16 and i >= args.slow_runs:
                                    continue
                                runs.append(rows.RUNNERS[row](bench, vpcs[n], latency))
                        say(began, f"L={latency * 1000:.0f} ms, N={n}")
                n, latency = doc.HEADLINE
                if n in vpcs:
                    aws.set_latency("*", latency)
                    aws.set_round_trip(0.0)  # TLS still real, its round trips not charged
                    bench.use(vpcs[n])
                    for _ in range(args.runs):
                        for row in chosen:
                            supplement.append(rows.RUNNERS[row](bench, vpcs[n], latency))
                    say(began, "without the TLS model")
                rows.set_latency(aws, 0.0)
                probe = vpcs[doc.HEADLINE[0]] if doc.HEADLINE[0] in vpcs else vpcs[counts[0]]
                bench.use(probe)
                cold = coldstart.measure_phases(bench, probe, COLDSTART_RUNS)
                cold.imports = coldstart.import_times(bench)
                say(began, "cold start")
            finally:
                bench.close()
                imds.stop()
    finally:
        aws.stop()
    return {
        "meta": meta(args, time.monotonic() - began),
        "runs": [f.as_dict() for f in runs],
        "supplement": [f.as_dict() for f in supplement],
        "coldstart": asdict(cold),
    }


def say(began: float, what: str) -> None:
    print(f"[{time.monotonic() - began:5.0f}s] {what}", file=sys.stderr, flush=True)


def meta(args: argparse.Namespace, duration: float) -> Dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {platform.system()} {platform.release()}",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "boto3": metadata.version("boto3"),
        "botocore": metadata.version("botocore"),
        "moto": metadata.version("moto"),
        "runs": args.runs,
        "reduced": f"the baseline at N ≥ 16: {args.slow_runs}, each of its runs takes seconds",
        "duration_s": duration,
    }


def cpu_model() -> str:
    try:
        for line in (
            Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").splitlines()
        ):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def write(data: Dict[str, Any]) -> None:
    DOC.write_text(doc.render(data, text.METHOD, text.CHANGES, text.NOTES), encoding="utf-8")
    doc.plot(data, str(PLOT))
    print(f"wrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

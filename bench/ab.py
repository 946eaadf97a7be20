"""A/B runs of product variants, interleaved in one run: how much each change bought.

    python -m bench.ab --variant before=DIR --variant after=DIR [--rows ...] [--cells N:L_MS,...]

Each DIR holds a `mirror_vip` package (a copy of python/mirror_vip at some step); the product
rows (ours cold / cached / warm) run once per variant, the others once, all interleaved run by
run. Rows come out named "ROW [VARIANT]".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

from sim.fakeaws import FakeAws
from sim.imds import ImdsEmulator

from . import rows, stats, vpc
from .measure import REPO, Figures, Launcher

PRODUCT_ROWS = ("ours cold", "ours cached", "ours cached + role", "ours cold + role", "ours warm")


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab")
    parser.add_argument("--variant", action="append", required=True, help="NAME=DIR")
    parser.add_argument("--rows", default="ours cold,ours cached,ours warm,limit")
    parser.add_argument("--cells", default="1:0,8:50", help="N:L_MS,...")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--raw", default=str(REPO / ".bench" / "ab.json"))
    args = parser.parse_args(argv)
    variants = [(name, Path(path)) for name, path in (v.split("=", 1) for v in args.variant)]
    chosen = [r.strip() for r in args.rows.split(",")]
    cells: List[Tuple[int, float]] = [
        (int(n), float(ms) / 1000) for n, ms in (c.split(":") for c in args.cells.split(","))
    ]
    results: List[Figures] = []
    began = time.monotonic()
    aws = FakeAws(seed=5).start()
    try:
        with tempfile.TemporaryDirectory(prefix="mvip-ab-") as work:
            counts = sorted({n for n, _ in cells})
            vpcs = {n: vpc.build(aws, n, i) for i, n in enumerate(counts)}
            imds = ImdsEmulator(vpcs[counts[0]].identity)
            imds.start()
            bench = rows.Bench(aws, imds, Path(work), Launcher(Path(work)))
            try:
                for n, latency in cells:
                    rows.set_latency(aws, latency)
                    bench.use(vpcs[n])
                    for _ in range(args.runs):
                        for row in chosen:
                            targets = variants if row in PRODUCT_ROWS else [("", bench.product)]
                            for name, product in targets:
                                found = rows.RUNNERS[row](bench.variant(product), vpcs[n], latency)
                                if name:
                                    found.row = f"{row} [{name}]"
                                results.append(found)
                    print(
                        f"N={n} L={latency * 1000:g}ms: {time.monotonic() - began:.0f}s",
                        file=sys.stderr,
                    )
            finally:
                bench.close()
                imds.stop()
    finally:
        aws.stop()
    raw = Path(args.raw)
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps([f.as_dict() for f in results], indent=1))
    print(stats.table(stats.cells([f.as_dict() for f in results])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

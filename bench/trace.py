"""One run of one row, its call record printed as a timeline (a tool for finding where the
time goes): python -m bench.trace ROW N L_MS [REPEAT]."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import List

from sim.fakeaws import FakeAws
from sim.imds import ImdsEmulator

from . import rows, vpc
from .measure import Launcher, depths


def main(argv: List[str]) -> int:
    row, n, latency_ms = argv[0], int(argv[1]), float(argv[2])
    repeat = int(argv[3]) if len(argv) > 3 else 1
    latency = latency_ms / 1000
    aws = FakeAws(seed=5).start()
    try:
        with tempfile.TemporaryDirectory(prefix="mvip-trace-") as work:
            net = vpc.build(aws, n, 0)
            imds = ImdsEmulator(net.identity)
            imds.start()
            bench = rows.Bench(aws, imds, Path(work), Launcher(Path(work)))
            try:
                rows.set_latency(aws, latency)
                for _ in range(repeat):
                    found = rows.RUNNERS[row](bench, net, latency)
                    t0 = found.started
                    print(
                        f"--- {row} N={n} L={latency_ms:g}ms: switched {found.switched_s}, "
                        f"exit {found.exit_s:.3f}, rt {found.round_trips}, "
                        f"ok {found.ok} {found.note}"
                    )
                    events = [
                        (
                            c.opened - t0,
                            f"connection {c.seq} {c.tls or 'plain'} (set up by the end time)",
                            "",
                            c.ready - t0,
                        )
                        for c in aws.connections()
                    ]
                    calls = aws.calls()
                    depth = depths(calls, aws.connections())
                    events += [
                        (
                            c.start - t0,
                            f"{c.action} {c.table or ''} on connection {c.connection}",
                            f"d{depth[c.seq]}",
                            (c.applied or c.end) - t0,
                        )
                        for c in calls
                    ]
                    for at, what, tag, until in sorted(events):
                        print(f"  {at * 1000:7.1f} -> {until * 1000:7.1f} ms  {tag:3} {what}")
            finally:
                bench.close()
                imds.stop()
    finally:
        aws.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Starts the measured processes, so that their peak RSS is their own.

A forked child's peak RSS (wait4's ru_maxrss) counts the memory of the process it was forked
from, before its exec: forked from the benchmark (moto and all, ~200 MB) every child would
report that. Forked from this small process, the floor is this process's ~10 MB.

One JSON request per stdin line: {"argv", "env", "timeout", "stdout", "stderr"} (two file
paths); one JSON answer per line: {"started", "exited", "returncode", "rss_kb"}, the times
time.monotonic() taken just before the spawn and just after wait4. End of input ends it.

    python bench/procs/launcher.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

MAX_REQUESTS = 100_000


def run(request: dict) -> dict:  # type: ignore[type-arg]
    with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(
            request["argv"], stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=request["env"]
        )
        killer = threading.Timer(float(request["timeout"]), proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            exited = time.monotonic()
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "started": started,
        "exited": exited,
        "returncode": proc.returncode,
        "rss_kb": int(usage.ru_maxrss),
    }


def main() -> int:
    for _ in range(MAX_REQUESTS):
        line = sys.stdin.readline()
        if not line.strip():
            break
        sys.stdout.write(json.dumps(run(json.loads(line))) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

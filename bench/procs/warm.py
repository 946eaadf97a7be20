"""The warm row: one long-lived process (as a reconcile task runs in IRIS), claiming on
command. Each line "claim" on stdin runs api.claim (the reconcile: describe, then writes) and
answers one JSON line: when the claim began and ended (time.monotonic(), which the parent
compares with the fake AWS's record), its exit code and the process's peak RSS. Any other line,
or end of input, ends the process.

    python bench/procs/warm.py SETTINGS_JSON
"""

from __future__ import annotations

import json
import sys
import time

from mirror_vip import api, settings

MAX_CLAIMS = 1000


def peak_rss_kb() -> int:
    """This process's own peak RSS (VmHWM): ru_maxrss would count the memory of the process
    it was forked from, before its exec."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    chosen = settings.from_json(sys.argv[1])
    for _ in range(MAX_CLAIMS):
        line = sys.stdin.readline()
        if line.strip() != "claim":
            break
        began = time.monotonic()
        report = api.claim(chosen)
        ended = time.monotonic()
        rss = peak_rss_kb()
        answer = {"began": began, "ended": ended, "exit_code": report.exit_code, "rss_kb": rss}
        if report.exit_code:
            answer["errors"] = report.errors
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

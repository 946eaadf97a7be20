"""One measured run: spawn the process (or ask the warm worker), then read the figures off the
fake AWS's call record.

Times are time.monotonic() everywhere (CLOCK_MONOTONIC is one clock for every process on the
host), so "process start" (taken in this process just before the spawn) and the record's times
(taken in the proxy) are on one axis.
"""

from __future__ import annotations

import bisect
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from sim.fakeaws import Call, Connection, FakeAws

from .vpc import DESTINATION, Vpc

REPO = Path(__file__).resolve().parent.parent
PROCESS_TIMEOUT_S = 120.0


@dataclass
class Figures:
    """What one run measured. Seconds are from process start (warm: from the claim's start)."""

    row: str
    n: int
    latency: float
    switched_s: Optional[float]  # to the last table switched; None: not every table switched
    exit_s: float  # to the process's exit (warm: the claim's return)
    first_ec2_s: Optional[float]  # to the first connection to the EC2 endpoint
    calls: int  # EC2 calls (requests the proxy received)
    connections: int  # EC2 connections opened
    round_trips: int  # sequential EC2 round trips up to the last switch
    no_route_s: float  # the longest time any table had no VIP route
    rss_mb: float  # the process's peak resident set
    fake_s: float  # the fake AWS's own time in the slowest write, beyond the injected latency
    ok: bool
    started: float = 0.0  # process start, time.monotonic() (for lining up with the record)
    note: str = ""

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class Spawned:
    started: float
    exited: float
    returncode: int
    stdout: str
    stderr: str
    rss_kb: int


def child_env(aws: FakeAws, imds_endpoint: str, product: Path = REPO / "python") -> Dict[str, str]:
    """A member's process environment, as IRIS's JOB has it: no AWS keys, no ~/.aws; the test
    settings are only the EC2 and IMDS endpoints (both on loopback) and the CA that signed the
    fake AWS's certificate (AWS_CA_BUNDLE, as behind a corporate CA)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": "/nonexistent",
        "PYTHONPATH": os.pathsep.join([str(product), str(REPO)]),
        **aws.env(),
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_endpoint,
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    }


class Launcher:
    """The small process that starts every measured one (procs/launcher.py says why)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "procs" / "launcher.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            text=True,
        )

    def spawn(
        self, argv: Sequence[str], env: Dict[str, str], timeout: float = PROCESS_TIMEOUT_S
    ) -> Spawned:
        """Run ARGV to its end; its own peak RSS, stdout and stderr."""
        out, err = self.workdir / "stdout", self.workdir / "stderr"
        request = {
            "argv": list(argv),
            "env": env,
            "timeout": timeout,
            "stdout": str(out),
            "stderr": str(err),
        }
        assert self._proc.stdin and self._proc.stdout
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()  # the launcher answers after at most `timeout`
        if not line:
            raise RuntimeError("the launcher died")
        answer = json.loads(line)
        return Spawned(
            started=float(answer["started"]),
            exited=float(answer["exited"]),
            returncode=int(answer["returncode"]),
            stdout=out.read_text(errors="replace"),
            stderr=err.read_text(errors="replace"),
            rss_kb=int(answer["rss_kb"]),
        )

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)


def sent_times(calls: Sequence[Call], connections: Sequence[Connection] = ()) -> Dict[int, float]:
    """When each call was made, as near as the record tells: the proxy reads a request
    (`start`) when it arrives, but the first one on a new connection can only be sent once the
    connection's set-up (TCP and TLS, with the modelled round trips) is over. Such a request
    was made no later than its connection was opened (the client connects to send it) unless
    the connection sat set up and idle while an answer went out: then it may have been opened
    ahead (api.PREOPEN_GUESS) and the request have waited for that answer, so it counts as made
    when it arrived. No clock threshold: on a loaded machine a request made before its
    connection was opened can arrive any time after the set-up ends, but it can only be counted
    as made early if no answer left between the two. {call seq: time}."""
    opened = {c.seq: c for c in connections}
    first_on: Dict[int, Call] = {}
    for call in sorted(calls, key=lambda c: c.start):
        if call.connection is not None:
            first_on.setdefault(call.connection, call)
    answered = sorted(c.end for c in calls if c.end)
    sent: Dict[int, float] = {}
    for call in calls:
        conn = opened.get(call.connection or -1)
        if conn is None or first_on.get(conn.seq) is not call:
            sent[call.seq] = call.start
            continue
        # an answer left while this connection was set up and idle (its own first call's
        # answer leaves after it arrived, so it is never among them)
        idle_answer = bisect.bisect_right(answered, call.start) > bisect.bisect_left(
            answered, conn.ready
        )
        sent[call.seq] = call.start if idle_answer else conn.opened
    return sent


def depths(calls: Sequence[Call], connections: Sequence[Connection] = ()) -> Dict[int, int]:
    """Each call's place in the longest chain of calls in which each left the client after
    the previous one's answer: calls in flight together share a depth. {call seq: depth}."""
    sent = sent_times(calls, connections)
    ordered = sorted(calls, key=lambda c: sent[c.seq])
    depth: Dict[int, int] = {}
    for i, call in enumerate(ordered):
        before = [depth[p.seq] for p in ordered[:i] if p.end <= sent[call.seq]]
        depth[call.seq] = 1 + max(before, default=0)
    return depth


def round_trips_to_switch(calls: Sequence[Call], connections: Sequence[Connection] = ()) -> int:
    """Sequential EC2 round trips on the critical path: the depth of the deepest route write
    that landed (a verify read after the last write is not counted)."""
    depth = depths(calls, connections)
    return max((depth[c.seq] for c in calls if c.landed), default=0)


def switch_times(aws: FakeAws, vpc: Vpc, since: float) -> Dict[str, Optional[float]]:
    """When each table's VIP route first pointed at member B (None: never)."""
    found: Dict[str, Optional[float]] = {}
    for table in vpc.tables:
        history = aws.route_history(table, DESTINATION, since)
        found[table] = next((at for at, target in history if target == vpc.eni_b), None)
    return found


def longest_no_route(aws: FakeAws, before: Dict[str, Optional[str]], since: float) -> float:
    windows = aws.no_route_windows(DESTINATION, before, since)
    spans = [
        (end if end is not None else time.monotonic()) - start
        for table_windows in windows.values()
        for start, end in table_windows
    ]
    return max(spans, default=0.0)


def figures(
    row: str,
    aws: FakeAws,
    vpc: Vpc,
    latency: float,
    before: Dict[str, Optional[str]],
    started: float,
    finished: float,
    rss_kb: int,
    ok: bool,
    note: str = "",
) -> Figures:
    calls = aws.calls(since=started)
    connections = aws.connections(since=started)
    switched = switch_times(aws, vpc, started)
    done = None if None in switched.values() else max(t for t in switched.values() if t)
    first = min((c.opened for c in connections), default=None)
    return Figures(
        row=row,
        n=vpc.n,
        latency=latency,
        switched_s=None if done is None else done - started,
        exit_s=finished - started,
        first_ec2_s=None if first is None else first - started,
        calls=len(calls),
        connections=len(connections),
        round_trips=round_trips_to_switch(calls, connections),
        no_route_s=longest_no_route(aws, before, started),
        rss_mb=rss_kb / 1024,
        fake_s=max(
            ((c.applied or c.end) - c.start - latency for c in calls if c.landed), default=0.0
        ),
        ok=ok and done is not None,
        started=started,
        note=note,
    )


def python() -> str:
    return sys.executable


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def as_list(found: List[Figures]) -> List[Dict[str, Any]]:
    return [f.as_dict() for f in found]

"""The rows: what each one runs, and how its run is measured.

- ours cold    a fresh process running bridge.claim as NotifyBecomePrimary's JOB does
               (use_cache on), with no remembered table list: the describe path;
- ours cached  the same, with the table list the last claim remembered: the failover path;
- ours cached + role, ours cold + role
               the same two in a shared VPC: role_arn set, AssumeRole (moto's STS, behind
               the same proxy and latency) before the route calls, which go as the role;
- ours warm    a reconcile (api.claim, describe path) in a long-lived process, the second
               and later claims of that process: imports paid, nothing else;
- baseline     the seed article's delete-then-create (sim/baseline.py) in a fresh process;
- limit        a fresh process doing only the parallel writes, tables, ENI and region known.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mirror_vip import cache, settings
from sim.accounts import OWNER_ROLE
from sim.fabric import BRIDGE
from sim.fakeaws import FakeAws
from sim.imds import ImdsEmulator

from . import measure
from .measure import Figures
from .vpc import DESTINATION, INTERFACE, VIP, Vpc, point_at_a, routes

ROWS = ("ours cold", "ours cached", "ours cached + role", "ours warm", "baseline", "limit")
ROLE_ROWS = ("ours cached + role", "ours cold + role")  # the second: --rows only
IRIS_FACTS = json.dumps({"mirror_name": "BENCH", "role": "primary"})
DEADLINE_S = 30.0
WARM_TIMEOUT_S = 60.0


@dataclass
class Bench:
    """The fake AWS, the member's IMDS, a work directory, the launcher, the warm workers (one
    per product variant: bench.ab runs several)."""

    aws: FakeAws
    imds: ImdsEmulator
    workdir: Path
    launcher: measure.Launcher
    product: Path = measure.REPO / "python"  # the mirror_vip the children import
    workers: Dict[Path, Warm] = field(default_factory=dict)
    role_arn: Optional[str] = None  # a shared VPC: the owner account's role (role rows)

    @property
    def cache_file(self) -> Path:
        return self.workdir / "route-tables.json"

    def settings(self) -> Dict[str, Any]:
        chosen: Dict[str, Any] = {
            "vip": VIP,
            "interface": INTERFACE,
            "deadline": DEADLINE_S,
            "cache_file": str(self.cache_file),
        }
        if self.role_arn:
            chosen["role_arn"] = self.role_arn
        return chosen

    def env(self) -> Dict[str, str]:
        return measure.child_env(self.aws, self.imds.endpoint, self.product)

    def variant(self, product: Path) -> Bench:
        """The same bench, its product rows running the mirror_vip found under PRODUCT."""
        return dataclasses.replace(self, product=product)

    def with_role(self, role_arn: str = OWNER_ROLE) -> Bench:
        """The same bench, its claims made through ROLE_ARN (moto's default account, where
        the VPCs are: moto serves an assumed role's calls from the role's account)."""
        return dataclasses.replace(self, role_arn=role_arn)

    def use(self, vpc: Vpc) -> None:
        """Make the IMDS emulator answer as member B of VPC."""
        self.imds.identity = vpc.identity

    def close(self) -> None:
        self.launcher.close()
        for worker in self.workers.values():
            worker.close()
        self.workers.clear()


@dataclass
class Warm:
    """The long-lived process of the warm row, and the VPC its untimed first claim was in."""

    proc: subprocess.Popen  # type: ignore[type-arg]
    vpc_id: str = ""

    def claim(self) -> Dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("claim\n")
        self.proc.stdin.flush()
        killer = threading.Timer(WARM_TIMEOUT_S, self.proc.kill)  # a claim ends by its deadline
        killer.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            killer.cancel()
        if not line:
            raise RuntimeError("the warm worker died")
        answer: Dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def prepare(bench: Bench, vpc: Vpc) -> Dict[str, Optional[str]]:
    """Routes back on member A, an empty record; returns where the routes point."""
    point_at_a(bench.aws, vpc)
    before = routes(bench.aws, vpc)
    bench.aws.clear_calls()
    return before


def _spawned(
    bench: Bench, row: str, vpc: Vpc, latency: float, argv: List[str], ok: Callable[[str], bool]
) -> Figures:
    before = prepare(bench, vpc)
    done = bench.launcher.spawn(argv, bench.env())
    good = done.returncode == 0 and ok(done.stdout)
    note = "" if good else f"rc={done.returncode} {measure.tail(done.stdout + done.stderr)}"
    return measure.figures(
        row, bench.aws, vpc, latency, before, done.started, done.exited, done.rss_kb, good, note
    )


def _report_ok(stdout: str) -> bool:
    try:
        return bool(json.loads(stdout).get("ok"))
    except ValueError:
        return False


def bridge_argv(bench: Bench) -> List[str]:
    options = json.dumps({"use_cache": True})
    return [
        measure.python(),
        "-c",
        BRIDGE,
        "claim",
        json.dumps(bench.settings()),
        IRIS_FACTS,
        options,
    ]


def ours_cold(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    bench.cache_file.unlink(missing_ok=True)
    return _spawned(bench, "ours cold", vpc, latency, bridge_argv(bench), _report_ok)


def remember(bench: Bench, vpc: Vpc) -> None:
    """The table list as a previous claim on this member left it."""
    chosen = settings.from_json(json.dumps(bench.settings()))
    tables = [cache.CachedTable(t, i == 0, True) for i, t in enumerate(vpc.tables)]
    found = bench.aws.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc.vpc_id]}])
    subnets = [(s["SubnetId"], s["CidrBlock"]) for s in found["Subnets"]]
    unsaved = cache.save(str(bench.cache_file), cache.key(chosen, vpc.vpc_id), tables, subnets)
    if unsaved:
        raise RuntimeError(unsaved)


def ours_cached(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    remember(bench, vpc)
    return _spawned(bench, "ours cached", vpc, latency, bridge_argv(bench), _report_ok)


def ours_cached_role(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    shared = bench.with_role()
    remember(shared, vpc)
    row = "ours cached + role"
    return _spawned(shared, row, vpc, latency, bridge_argv(shared), _report_ok)


def ours_cold_role(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    shared = bench.with_role()
    shared.cache_file.unlink(missing_ok=True)
    row = "ours cold + role"
    return _spawned(shared, row, vpc, latency, bridge_argv(shared), _report_ok)


def baseline(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    argv = [
        measure.python(),
        str(measure.REPO / "bench/procs/baseline.py"),
        bench.imds.endpoint,
        VIP,
    ]
    return _spawned(bench, "baseline", vpc, latency, argv, lambda out: '"route_tables"' in out)


def limit(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    argv = [
        measure.python(),
        str(measure.REPO / "bench/procs/limit.py"),
        vpc.region,
        vpc.eni_b,
        DESTINATION,
        *vpc.tables,
    ]
    return _spawned(bench, "limit", vpc, latency, argv, lambda out: True)


def ours_warm(bench: Bench, vpc: Vpc, latency: float) -> Figures:
    worker = bench.workers.get(bench.product)
    if worker is None:
        cache = bench.workdir / f"warm-{len(bench.workers)}-tables.json"
        argv = [
            measure.python(),
            str(measure.REPO / "bench/procs/warm.py"),
            json.dumps({**bench.settings(), "cache_file": str(cache)}),
        ]
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=bench.env(), text=True
        )
        worker = bench.workers[bench.product] = Warm(proc)
    if worker.vpc_id != vpc.vpc_id:  # its first claim in this VPC: untimed (fills its cache)
        prepare(bench, vpc)
        worker.claim()
        worker.vpc_id = vpc.vpc_id
    before = prepare(bench, vpc)
    answer = worker.claim()
    good = answer.get("exit_code") == 0
    return measure.figures(
        "ours warm",
        bench.aws,
        vpc,
        latency,
        before,
        answer["began"],
        answer["ended"],
        int(answer["rss_kb"]),
        good,
        "" if good else str(answer.get("errors")),
    )


RUNNERS: Dict[str, Callable[[Bench, Vpc, float], Figures]] = {
    "ours cold": ours_cold,
    "ours cached": ours_cached,
    "ours cached + role": ours_cached_role,
    "ours cold + role": ours_cold_role,
    "ours warm": ours_warm,
    "baseline": baseline,
    "limit": limit,
}


def set_latency(aws: FakeAws, latency: float) -> None:
    """Per-call latency L on every EC2 action, and L per round trip of a new connection's set-up:
    TCP's, and each TLS flight the client waits for (TLS 1.3: 2L in all, sim/tls.py)."""
    aws.set_latency("*", latency)
    aws.set_round_trip(latency)

"""Fixtures and checks shared by the simulation tests (test_fakeaws, test_imds_emulator,
test_reliability, test_drill). Kept out of conftest.py, which belongs to the core's tests:
a test module imports what it uses from here.

Fixture names start with `sim_` so they never shadow the core's (`aws`, `world`, `imds`).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Set, TypeVar

import pytest

from bench import rows, vpc
from bench.measure import Launcher
from mirror_vip import api
from mirror_vip.aws import open_connections
from sim import netns
from sim.fabric import Fabric
from sim.fakeaws import Call, FakeAws, Refusal
from sim.imds import ImdsEmulator
from sim.world import World, build, point_all

F = TypeVar("F", bound=Callable[..., Any])
NETNS_UNAVAILABLE = netns.unavailable_reason()

needs_netns = [
    pytest.mark.netns,
    pytest.mark.skipif(
        NETNS_UNAVAILABLE is not None,
        reason=f"network namespaces unavailable: {NETNS_UNAVAILABLE}",
    ),
]  # as a module's `pytestmark`


def netns_test(fn: F) -> F:
    """Mark one test as needing network namespaces (skipped, with the reason, without them)."""
    for mark in reversed(needs_netns):
        fn = mark(fn)
    return fn


@pytest.fixture(scope="module")
def sim_aws() -> Iterator[FakeAws]:
    """moto's server and our proxy on loopback, for a whole module (reset per test by users)."""
    aws = FakeAws(seed=11).start()
    try:
        yield aws
    finally:
        aws.stop()


@pytest.fixture
def sim_clean_aws(sim_aws: FakeAws) -> Iterator[FakeAws]:
    """The module's fake AWS with moto's state, faults, hooks and record all cleared."""
    sim_aws.reset()
    yield sim_aws
    sim_aws.clear_faults()


@pytest.fixture(scope="module")
def sim_fabric_module(sim_aws: FakeAws) -> Iterator[Fabric]:
    sim_aws.reset()
    world = build(sim_aws.ec2, sim_aws.client("cloudformation"))
    with Fabric(sim_aws, world) as fab:
        yield fab


@pytest.fixture
def sim_fab(sim_fabric_module: Fabric) -> Iterator[Fabric]:
    """The fabric with member A primary: every selected table's VIP route on A's ENI, the
    router on A, IMDS healthy and listening, no faults, an empty call record."""
    fab = sim_fabric_module
    reset_fabric(fab)
    yield fab
    fab.aws.clear_faults()


def reset_fabric(fab: Fabric) -> None:
    fab.aws.clear_faults()
    for name in fab.world.members:
        fab.start_imds(name).heal()
        fab.start_service(name)
    point_all(fab.aws.ec2, fab.world, "memberA")
    fab.sync_router()
    assert fab.wait_router("memberA", 10.0)
    fab.aws.clear_calls()


# --- checks on the fake AWS's state and record ---------------------------------------------


def targets(aws: FakeAws, world: World) -> Dict[str, Optional[str]]:
    """Where each selected table's VIP route points now (in moto)."""
    found = aws.routes_to(world.destination, world.vpc_id)
    return {t: found.get(t) for t in world.tables}


def vip_route_count(aws: FakeAws, world: World, table: str) -> int:
    raw = aws.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"][0]
    return sum(1 for r in raw["Routes"] if r.get("DestinationCidrBlock") == world.destination)


def assert_all_on(aws: FakeAws, world: World, member: str) -> None:
    eni = world.members[member].eni
    now = targets(aws, world)
    assert now == dict.fromkeys(world.tables, eni), f"not all on {member} ({eni}): {now}"


def assert_never_absent(
    aws: FakeAws, world: World, before: Dict[str, Optional[str]], since: float = 0.0
) -> None:
    """From the record: no table that had the VIP route lost it, even for a moment."""
    windows = aws.no_route_windows(world.destination, before, since)
    gaps = {t: w for t, w in windows.items() if w}
    assert not gaps, f"VIP route absent from tables that had one: {gaps}"


def by(calls: Sequence[Call], caller: str) -> List[Call]:
    return [c for c in calls if c.caller == caller]


def critical_path(calls: Sequence[Call]) -> int:
    """The number of round trips one after another: the longest chain of calls in which each
    starts after the previous one ended. Parallel calls count once."""
    ordered = sorted(calls, key=lambda c: c.start)
    depth: List[int] = []
    for i, call in enumerate(ordered):
        before = [depth[j] for j in range(i) if ordered[j].end <= call.start]
        depth.append(1 + max(before, default=0))
    return max(depth, default=0)


class Gate:
    """Proof that calls were sent side by side, from the order of events, not a clock: the
    fake AWS holds each call that `holds` (default: the wave's own calls) until the wave is
    complete, i.e. `size` distinct keys (`wave(call)`, None: not in the wave) have arrived.
    A client that sends the whole wave without waiting for any held answer passes at once;
    one that waits for an answer (a write after another write, or after the describe) never
    completes it, and the gate opens only after TIMEOUT_S, which `timed_out` records.

        with Gate(aws, lambda c: c.table if c.is_write else None, len(tables)) as writes:
            claim()
        assert writes.complete
    """

    def __init__(
        self,
        aws: FakeAws,
        wave: Callable[[Call], Optional[Hashable]],
        size: int,
        holds: Optional[Callable[[Call], bool]] = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.aws, self.wave, self.size, self.timeout_s = aws, wave, size, timeout_s
        self.holds = holds or (lambda call: wave(call) is not None)
        self.seen: Set[Hashable] = set()
        self.timed_out: List[Call] = []
        self._released = False
        self._opened = threading.Condition()

    @property
    def complete(self) -> bool:
        """The whole wave arrived and no call was let through by the timeout."""
        with self._opened:
            return len(self.seen) >= self.size and not self.timed_out

    def __call__(self, call: Call) -> Optional[Refusal]:
        key = self.wave(call)
        with self._opened:
            if key is not None:
                self.seen.add(key)
                self._opened.notify_all()
            if self.holds(call) and not self._opened.wait_for(
                lambda: self._released or len(self.seen) >= self.size, self.timeout_s
            ):
                self.timed_out.append(call)
        return None

    def __enter__(self) -> Gate:
        self.aws.intercept(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.aws.remove_hook(self)
        with self._opened:
            self._released = True  # whatever is still held goes on
            self._opened.notify_all()


# --- connections opened ahead of the writes (api.open_connections) ---------------------------

HOLD_BOUND_S = 5.0  # the describe waits at most this long for the opened connections


@dataclass
class Opened:
    """What the claim's open_connections did: how many it opened, and when it was over."""

    count: int = -1
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Opened:
    """The product's own open_connections, watched (called through, unchanged)."""
    seen = Opened()

    def watched(ec2: Any, count: int) -> int:
        try:
            seen.count = open_connections(ec2, count)
        finally:
            seen.done.set()
        return seen.count

    monkeypatch.setattr(api, "open_connections", watched)
    return seen


def hold_first_describe(aws_like: Any, since: float, opened: Opened) -> None:
    """The first DescribeRouteTables waits, at the fake AWS, until open_connections is over (at
    most HOLD_BOUND_S): the writes then find whatever it opened, however loaded the machine."""
    held: List[Call] = []

    def hold(call: Call) -> None:
        if call.action == "DescribeRouteTables" and call.start >= since and not held:
            held.append(call)
            opened.done.wait(HOLD_BOUND_S)

    aws_like.fake.intercept(hold)


# --- the benchmark's machinery, for the structural bench tests ---------------------------------


@contextlib.contextmanager
def running_bench(seed: int, prefix: str, latency_s: float) -> Iterator[rows.Bench]:
    """bench.rows.Bench on a fake AWS of its own (SEED) and an IMDS emulator, every EC2 call
    and connection set-up round trip costing LATENCY_S; everything stopped after."""
    aws = FakeAws(seed=seed).start()
    try:
        with tempfile.TemporaryDirectory(prefix=prefix) as work:
            imds = ImdsEmulator(vpc.build(aws, 1, 0).identity)
            imds.start()
            found = rows.Bench(aws, imds, Path(work), Launcher(Path(work)))
            rows.set_latency(aws, latency_s)
            try:
                yield found
            finally:
                found.close()
                imds.stop()
    finally:
        aws.stop()

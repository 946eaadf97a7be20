"""The failover drill (`make demo`, `python -m sim.drill`).

In the simulated VPC (sim.fabric): member A is primary and a client opens a fresh connection to
VIP:1972 every few milliseconds. Then A's service stops and member B runs exactly what IRIS's
NotifyBecomePrimary runs (`mirror_vip.bridge.claim`, in its own process, inside B's namespace).
The drill prints the timeline (each AWS call, the router's switch, the first answer from B) and
the client's outage, then does the same with the seed article's delete-then-create claim
(sim.baseline) to show its window with no route.

The fake AWS adds a latency to each EC2 call (default 150 ms + up to 50 ms, seeded), because on
loopback a call takes ~3 ms where EC2's API takes a few hundred; `--latency 0` turns it off.

Without root or without `ip netns`, it says so in one line and runs the claim, status and release
in process against the same fake AWS (no network, so no client: the no-route window is read from
the fake AWS's call record).

A run in namespaces also draws its timeline (sim.drill_plot) into docs/drill.png (`--picture`),
from the same Outcome objects the text is printed from; the README shows that file. In process
there is no client to draw, so no picture is written, and the drill says so in one line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .client import Attempt, Watcher
from .fabric import IRIS_FACTS, SERVICE_PORT, Fabric, RouteSwitch, parse_report, wait_for
from .fakeaws import Call, FakeAws
from .netns import unavailable_reason
from .world import Layout, World, build

OURS, BASELINE = "mirror-vip", "baseline"
TITLES = {
    OURS: "mirror-vip: bridge.claim on memberB (what NotifyBecomePrimary's JOB runs)",
    BASELINE: "baseline: the seed article's delete-then-create, on memberB",
}
PICTURE_TITLES = {
    OURS: "mirror-vip (bridge.claim on memberB)",
    BASELINE: "seed article (delete-then-create, table by table)",
}
PICTURE = Path(__file__).resolve().parent.parent / "docs" / "drill.png"
CLAIM_TIMEOUT_S = 90.0
IN_PROCESS = Layout(name="mvip-inprocess")  # moto's state is per process: a stack of its own
ANSWER_TIMEOUT_S = 15.0


@dataclass
class Options:
    latency: float = 0.150
    jitter: float = 0.050
    interval: float = 0.005
    timeout: float = 0.25
    propagation: float = 0.0
    seed: int = 7
    algorithms: Tuple[str, ...] = (OURS, BASELINE)
    warm: bool = True  # B has been primary before: its cached route-table list is filled


@dataclass
class Outcome:
    """One failover, measured. Times are time.monotonic(); `trigger` is when A went down."""

    algorithm: str
    trigger: float
    claim_started: float
    claim_ended: float
    exit_code: int
    report: Dict[str, Any]
    calls: List[Call]
    switches: List[RouteSwitch]
    last_a: Optional[Attempt]
    first_b: Optional[Attempt]
    failed_attempts: int
    no_route: Dict[str, List[Tuple[float, Optional[float]]]] = field(default_factory=dict)
    client_table: str = ""
    final_routes: Dict[str, Optional[str]] = field(default_factory=dict)
    # for the picture (sim.drill_plot): every attempt the client finished, each table's VIP
    # route target before the failover, and the member behind each ENI
    attempts: List[Attempt] = field(default_factory=list)
    routes_before: Dict[str, Optional[str]] = field(default_factory=dict)
    members: Dict[str, str] = field(default_factory=dict)

    @property
    def outage(self) -> Optional[float]:
        if self.first_b is None:
            return None
        since = self.last_a.end if self.last_a else self.trigger
        return self.first_b.end - since

    @property
    def writes(self) -> int:
        return sum(1 for c in self.calls if c.is_write)

    def client_window(self) -> Optional[float]:
        spans = self.no_route.get(self.client_table, [])
        return sum((end or self.claim_ended) - start for start, end in spans) if spans else None

    def total_window(self) -> float:
        return sum(
            (end or self.claim_ended) - start
            for spans in self.no_route.values()
            for start, end in spans
        )


# --- the drill in namespaces ---------------------------------------------------------------


def make_primary_a(fab: Fabric, warm_b: bool = False) -> Dict[str, Any]:
    """Step 0 of each run: member A claims the VIP (the product, as at IRIS start-up). With
    WARM_B, B claims first, as when it was primary before: that fills its route-table cache."""
    fab.start_service("memberA")
    fab.start_service("memberB")
    if warm_b:
        fab.bridge("memberB", "claim", timeout=CLAIM_TIMEOUT_S, use_cache=True)
    report = fab.bridge("memberA", "claim", timeout=CLAIM_TIMEOUT_S, use_cache=True)
    if not fab.wait_router("memberA", 10.0):
        raise RuntimeError(f"the router did not follow member A's claim: {report}")
    return report


def failover(fab: Fabric, algorithm: str, opts: Options) -> Outcome:
    """A is primary; the client watches; A goes down; B claims with ALGORITHM."""
    aws, world = fab.aws, fab.world
    if not opts.warm:
        fab.forget_caches()
    make_primary_a(fab, warm_b=opts.warm and algorithm == OURS)
    watcher = Watcher(
        fab.argv(
            "client",
            [
                sys.executable,
                "-m",
                "sim.client",
                world.vip,
                str(SERVICE_PORT),
                "--interval",
                str(opts.interval),
                "--timeout",
                str(opts.timeout),
                "--duration",
                "120",
            ],
        ),
        env=fab.member_env(),
    )
    try:
        steady = wait_for(
            lambda: sum(1 for a in watcher.snapshot() if a.ok and a.who == "memberA") >= 20,
            ANSWER_TIMEOUT_S,
        )
        if not steady:
            raise RuntimeError("the client never reached member A through the VIP")
        before = aws.routes_to(world.destination, world.vpc_id)
        aws.set_latency("*", opts.latency, opts.jitter)
        argv = (
            fab.bridge_argv("memberB", "claim", use_cache=True)
            if algorithm == OURS
            else [sys.executable, "-m", "sim.baseline"]
        )
        trigger = time.monotonic()
        fab.stop_service("memberA")
        started = time.monotonic()
        proc = fab.popen("memberB", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=CLAIM_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        ended = time.monotonic()
        wait_for(lambda: watcher.first("memberB", trigger) is not None, ANSWER_TIMEOUT_S)
        wait_for(lambda: time.monotonic() > ended + 0.2, 1.0)
    finally:
        attempts = watcher.stop()
        aws.clear_faults()
    b_key = fab.imds["memberB"].identity.access_key_id
    calls = [c for c in aws.calls(since=trigger) if c.caller == b_key]
    last_a = max(
        (a for a in attempts if a.ok and a.who == "memberA"), key=lambda a: a.end, default=None
    )
    first_b = min(
        (a for a in attempts if a.ok and a.who == "memberB" and a.start >= trigger),
        key=lambda a: a.end,
        default=None,
    )
    lo = last_a.start if last_a else trigger
    hi = first_b.start if first_b else float("inf")
    failed = sum(1 for a in attempts if not a.ok and lo <= a.start <= hi and a.err != "stopped")
    report = parse_report(out, err)
    return Outcome(
        algorithm=algorithm,
        trigger=trigger,
        claim_started=started,
        claim_ended=ended,
        exit_code=proc.returncode,
        report=report,
        calls=calls,
        switches=[s for s in fab.switches if s.at >= trigger],
        last_a=last_a,
        first_b=first_b,
        failed_attempts=failed,
        no_route=aws.no_route_windows(world.destination, before, since=trigger),
        client_table=world.client_table,
        final_routes=aws.routes_to(world.destination, world.vpc_id),
        attempts=[a for a in attempts if a.err != "stopped"],
        routes_before=before,
        members={m.eni: name for name, m in world.members.items()},
    )


# --- printing --------------------------------------------------------------------------------


def _ms(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _short(resource: Optional[str]) -> str:
    if not resource:
        return ""
    head, _, tail = resource.partition("-")
    return f"{head}-{tail[:6]}" if tail else resource


def timeline(outcome: Outcome, world: World) -> List[str]:
    t0 = outcome.trigger
    members = {m.eni: name for name, m in world.members.items()}
    events: List[Tuple[float, str]] = [
        (t0, "failover: memberA's service stops"),
        (outcome.claim_started, "claim process starts on memberB"),
    ]
    for c in outcome.calls:
        what = c.action
        if c.table:
            what += " " + _short(c.table) + ("*" if c.table == world.client_table else "")
        if c.target:
            what += f" -> {members.get(c.target, _short(c.target))}"
        result = str(c.status) if c.ok else (c.code or f"HTTP {c.status}")
        events.append((c.start, f"  {what:<37} {result:<22}{_ms(c.end - c.start):>7}"))
    for s in outcome.switches:
        to = s.member or "nowhere (blackhole: no VIP route)"
        events.append((s.at, f"router: VIP -> {to}"))
    if outcome.first_b:
        events.append((outcome.first_b.end, "first answer from memberB"))
    summary = outcome.report.get("outcome") or ("ok" if outcome.report.get("ok") else "failed")
    events.append((outcome.claim_ended, f"claim process exits {outcome.exit_code} ({summary})"))
    events.sort(key=lambda e: e[0])
    lines = [f"{at - t0:+8.3f}s  {text}" for at, text in events]
    window = outcome.client_window()
    lines.append(
        f"  outage {_ms(outcome.outage)} (last answer from memberA -> first from memberB), "
        f"{outcome.failed_attempts} failed connection attempts; "
        f"no-route window in the client's table: {_ms(window) if window else 'none'}"
    )
    wrong = {
        t: v
        for t, v in outcome.final_routes.items()
        if t in world.tables and v != world.members["memberB"].eni
    }
    if wrong:
        lines.append(f"  NOT on memberB afterwards: {', '.join(sorted(wrong))}")
    return lines


def comparison(outcomes: Sequence[Outcome]) -> List[str]:
    head = (
        f"  {'':<21}{'outage':>9}{'failed':>8}{'AWS calls':>11}{'writes':>8}"
        "  no-route window (client's table / all tables)"
    )
    lines = [head]
    for o in outcomes:
        name = "mirror-vip" if o.algorithm == OURS else "baseline (article)"
        window = o.client_window()
        total = o.total_window()
        lines.append(
            f"  {name:<21}{_ms(o.outage):>9}{o.failed_attempts:>8}{len(o.calls):>11}{o.writes:>8}"
            f"  {_ms(window) if window else 'none'} / {_ms(total) if total else 'none'}"
        )
    return lines


def header(world: World, fab: Fabric, opts: Options) -> List[str]:
    latency = (
        f"{opts.latency * 1000:.0f} ms per EC2 call "
        f"(+0-{opts.jitter * 1000:.0f} ms, seed {opts.seed})"
        if opts.latency
        else "none (loopback speed)"
    )
    return [
        "mirror-vip failover drill: a simulated VPC in network namespaces",
        f"  world     {world.built_with}",
        f"            {world.vpc_id} {world.vpc_cidr}; {len(world.tables)} route tables "
        f"selected by {world.settings.get('route_table_tag') or 'all'}",
        f"  VIP       {world.vip} on memberA ({world.members['memberA'].private_ip}) and memberB "
        f"({world.members['memberB'].private_ip}) as eth0:1",
        f"  client    {world.client_ip}, a new connection to VIP:{SERVICE_PORT} every "
        f"{opts.interval * 1000:.0f} ms (gives up after {opts.timeout * 1000:.0f} ms); its table "
        f"{_short(world.client_table)}* drives the router",
        f"  fake AWS  moto behind the fidelity proxy at {fab.endpoint}; latency {latency}",
        "  members   "
        + (
            "both have been primary before: memberB's cached route-table list is warm"
            if opts.warm
            else "memberB was never primary: no cached route-table list (--cold)"
        ),
    ]


def run_netns(opts: Options, out: Any = None) -> List[Outcome]:
    out = out or sys.stdout
    aws = FakeAws(seed=opts.seed).start()
    try:
        world = build(aws.ec2, aws.client("cloudformation"))
        with Fabric(aws, world, propagation_delay=opts.propagation) as fab:
            for line in header(world, fab, opts):
                print(line, file=out)
            outcomes = []
            for algorithm in opts.algorithms:
                print(f"\n[{len(outcomes) + 1}] {TITLES[algorithm]}", file=out)
                outcome = failover(fab, algorithm, opts)
                for line in timeline(outcome, world):
                    print(line, file=out)
                outcomes.append(outcome)
            if len(outcomes) > 1:
                print("\nside by side", file=out)
                for line in comparison(outcomes):
                    print(line, file=out)
            out.flush()
            return outcomes
    finally:
        aws.stop()


def draw(outcomes: Sequence[Outcome], path: str, out: Any = None) -> Optional[str]:
    """The timeline picture at PATH (sim.drill_plot, imported only here: matplotlib is a dev
    dependency, and the drill runs without it). One line says where, or why not."""
    from . import drill_plot

    return drill_plot.save(outcomes, PICTURE_TITLES, path, out or sys.stdout)


# --- the fallback: in process, no namespaces -------------------------------------------------


def run_in_process(
    reason: str, opts: Options, out: Any = None, layout: Optional[Layout] = None
) -> int:
    """claim / status / release through the bridge against the fake AWS, in this process."""
    out = out or sys.stdout
    from mirror_vip import bridge

    from . import baseline

    print(
        f"note: {reason}: running in process against moto instead (no namespaces, no client)",
        file=out,
    )
    aws = FakeAws(seed=opts.seed).start()
    saved = {k: os.environ.get(k) for k in _ENV}
    try:
        world = build(aws.ec2, aws.client("cloudformation"), layout or IN_PROCESS)
        os.environ.update(
            {
                **aws.env(),
                "AWS_ACCESS_KEY_ID": "AKIDINPROCESSDRILL00",
                "AWS_SECRET_ACCESS_KEY": "sim-secret",
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        print(
            f"  world     {world.built_with}; VIP {world.vip}; {len(world.tables)} tables", file=out
        )

        def as_member(name: str) -> str:
            return world.settings_json(
                eni=world.members[name].eni, region=world.region, interface="lo"
            )

        for step, name, fn in (
            ("claim", "memberB", bridge.claim),
            ("status", "memberB", bridge.status),
            ("claim", "memberA", bridge.claim),
        ):
            aws.set_latency("*", opts.latency, opts.jitter)
            since = time.monotonic()
            report = json.loads(fn(as_member(name), IRIS_FACTS))
            aws.clear_faults()
            calls = aws.calls(since=since)
            print(
                f"  {step:<8}on {name}: {bridge.summarize(json.dumps(report))} "
                f"({len(calls)} AWS calls, {sum(c.is_write for c in calls)} writes)",
                file=out,
            )
        before = aws.routes_to(world.destination, world.vpc_id)
        aws.set_latency("*", opts.latency, opts.jitter)
        since = time.monotonic()
        import boto3

        baseline.claim(
            boto3.Session(region_name=world.region), world.members["memberB"].instance_id, world.vip
        )
        aws.clear_faults()
        windows = aws.no_route_windows(world.destination, before, since)
        spans = [(end or time.monotonic()) - start for s in windows.values() for start, end in s]
        print(
            f"  baseline on memberB: {len(aws.calls(since=since))} AWS calls; no-route window per "
            f"table {', '.join(_ms(x) for x in spans) or 'none'}",
            file=out,
        )
        release = json.loads(bridge.release(as_member("memberB"), IRIS_FACTS))
        print(f"  release on memberB: {bridge.summarize(json.dumps(release))}", file=out)
        return 0
    finally:
        restore_environment(saved)
        aws.stop()


def restore_environment(saved: Dict[str, Optional[str]]) -> None:
    """Put back the variables SAVED held ({name: value, None where it was unset})."""
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_CA_BUNDLE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_EC2_METADATA_DISABLED",
)


# --- entry -------------------------------------------------------------------------------------


def _stop_on_sigterm() -> Any:
    """SIGTERM becomes KeyboardInterrupt, so the namespaces are removed on the way out."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, interrupt)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.drill", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--latency", type=float, default=Options.latency, help="s per EC2 call")
    parser.add_argument("--jitter", type=float, default=Options.jitter, help="s, added at random")
    parser.add_argument("--propagation", type=float, default=0.0, help="s before a route applies")
    parser.add_argument("--seed", type=int, default=Options.seed)
    parser.add_argument("--only", choices=(OURS, BASELINE), help="run one algorithm only")
    parser.add_argument("--cold", action="store_true", help="memberB has no route-table cache")
    parser.add_argument("--in-process", action="store_true", help="skip the namespaces")
    parser.add_argument(
        "--picture",
        default=str(PICTURE),
        metavar="PNG",
        help="where the timeline picture goes (default: docs/drill.png, redrawn by every run "
        "in namespaces; none in process)",
    )
    args = parser.parse_args(argv)
    opts = Options(
        latency=args.latency,
        jitter=args.jitter,
        propagation=args.propagation,
        seed=args.seed,
        algorithms=(args.only,) if args.only else (OURS, BASELINE),
        warm=not args.cold,
    )
    previous = _stop_on_sigterm()
    try:
        reason = "--in-process given" if args.in_process else unavailable_reason()
        if reason:
            code = run_in_process(reason, opts)
            from .drill_plot import shown  # matplotlib is not imported: none is drawn

            where = shown(args.picture)
            print(f"picture: none in process (no client to draw; {where} left as it was)")
            return code
        outcomes = run_netns(opts)
    finally:
        signal.signal(signal.SIGTERM, previous)
    draw(outcomes, args.picture)
    ours = [o for o in outcomes if o.algorithm == OURS]
    return 0 if all(o.exit_code == 0 and o.first_b for o in ours) else 1


if __name__ == "__main__":
    sys.exit(main())

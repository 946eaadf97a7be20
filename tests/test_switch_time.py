"""The failover's figure: seconds from IRIS's hook to the last verified route switch.

Against moto made to answer as AWS does (conftest): each case fixes when the hook was called
(a second before the claim) and holds the verify read for a while, so that a figure taken from
the wrong moment (the verify read's answer instead of the write's, or the claim's start) lands
measurably outside what the case allows. The bounds are orderings of events the test itself
observes (when the verify read arrived at EC2), never a speed the machine must reach.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List

import pytest

from mirror_vip import api, bridge, settings, switchtime
from mirror_vip.report import Report, TableResult, render_text, summary
from tests.conftest import AwsLike, World

HOLD_S = 0.3  # how long the verify read is held at EC2
MAPPING_S = 0.05  # the test's and the claim's wall-to-monotonic mappings may differ this much


def claim(notified_at: Any, **values: Any) -> Report:
    return api.claim(settings.from_mapping(values), notified_at=notified_at)


def hold_the_verify_read(aws: AwsLike, arrived: List[float]) -> None:
    """The first DescribeRouteTables after the writes is held HOLD_S; its arrival is noted."""

    def hook(backend: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "DescribeRouteTables" and aws.count("ReplaceRoute", "CreateRoute"):
            aws.hooks.clear()
            arrived.append(time.monotonic())
            time.sleep(HOLD_S)

    aws.hooks.append(hook)


def test_the_figure_is_the_last_write_answer_that_the_verify_read_confirmed(
    member_a: World, aws: AwsLike
) -> None:
    w = member_a
    w.route(w.tables[0], w.b.eni)
    aws.calls.clear()
    arrived: List[float] = []
    hold_the_verify_read(aws, arrived)
    notified_mono = time.monotonic() - 1.0
    report = claim(time.time() - 1.0)
    assert report.ok and report.verified is True, report.errors
    assert set(w.targets().values()) == {w.a.eni}
    assert report.notified_at is not None and report.switched_after_s is not None
    verify_arrived = arrived[0] - notified_mono
    # every write was answered before the verify read went out: the figure is before it, and
    # not the verify read's answer (HOLD_S later)
    assert 1.0 <= report.switched_after_s <= verify_arrived + MAPPING_S
    assert "switched and verified" in summary(report)
    assert f"{report.switched_after_s:.2f}s after IRIS called the hook" in render_text(report)


def test_a_write_whose_answer_was_lost_counts_from_the_verify_read(
    member_a: World, aws: AwsLike
) -> None:
    """The write lands, its answer is an error: only the verify read shows it switched."""
    w = member_a
    lost = w.tables[1]

    def lands_then_fails(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "CreateRoute" and params["RouteTableId"] == lost:
            ec2.create_route(
                RouteTableId=lost,
                DestinationCidrBlock=params["DestinationCidrBlock"],
                NetworkInterfaceId=w.a.eni,
            )

    aws.deny.add(("CreateRoute", lost))
    aws.hooks.append(lands_then_fails)
    arrived: List[float] = []
    hold_the_verify_read(aws, arrived)
    notified_mono = time.monotonic() - 1.0
    report = claim(time.time() - 1.0)
    assert report.ok, report.errors
    assert {t.id: t.action for t in report.route_tables}[lost] == "created"
    assert report.switched_after_s is not None
    assert report.switched_after_s >= arrived[0] - notified_mono + HOLD_S - MAPPING_S


def test_no_figure_when_a_table_is_not_switched(member_a: World, aws: AwsLike) -> None:
    w = member_a
    aws.deny.add(("CreateRoute", w.tables[1]))
    report = claim(time.time() - 1.0)
    assert report.outcome == "partial" and report.verified is True
    assert report.switched_after_s is None
    assert "no switch time: not every route table was switched and verified" in (
        render_text(report)
    )


def test_no_figure_when_the_verify_read_fails(member_a: World, aws: AwsLike) -> None:
    w = member_a

    def deny_reads_after_the_writes(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "CreateRoute":
            aws.deny.add(("DescribeRouteTables", None))  # type: ignore[arg-type]  # no table id

    aws.hooks.append(deny_reads_after_the_writes)
    report = claim(time.time() - 1.0)
    assert report.verified is False and not report.ok
    assert report.switched_after_s is None
    aws.deny.clear()
    assert set(w.targets().values()) == {w.a.eni}  # switched, but not seen to be


def test_no_figure_when_nothing_was_switched(member_a: World, aws: AwsLike) -> None:
    assert claim(None).ok
    report = claim(time.time() - 1.0)
    assert report.ok and report.switched_after_s is None
    assert "nothing to switch" in render_text(report)


def test_without_a_hook_time_there_is_no_figure_and_no_line(member_a: World) -> None:
    report = claim(None)
    assert report.ok and report.notified_at is None and report.switched_after_s is None
    assert "failover" not in render_text(report) and "switched and verified" not in summary(report)


def test_a_hook_time_after_this_clock_gives_no_figure_and_says_why(member_a: World) -> None:
    report = claim(time.time() + 60)
    assert report.ok and report.switched_after_s is None
    assert any("was the clock set back?" in w for w in report.warnings), report.warnings


def test_the_bridge_passes_the_hook_time_as_iris_writes_it(member_a: World) -> None:
    given = f"{time.time() - 2.0:.3f}"
    answer = json.loads(bridge.claim(json.dumps({"vip": "192.168.200.10"}), "{}", 0, 0, 0, given))
    assert answer["ok"] is True, answer["errors"]
    assert answer["notified_at"] == float(given)
    assert answer["switched_after_s"] >= 2.0
    again = Report.from_dict(answer)
    assert again.switched_after_s == answer["switched_after_s"]


# --- the rule itself, on fixed moments ----------------------------------------------------------


def tables(*actions: str) -> List[TableResult]:
    return [TableResult(id=f"rtb-{i:08x}", action=a) for i, a in enumerate(actions)]


def test_the_rule_takes_the_latest_moment() -> None:
    clock = switchtime.Clock(100.0, wall=110.0, monotonic=1000.0)  # the hook: 10 s ago
    found = tables("replaced", "created", "unchanged")
    answered = {found[0].id: 1001.0, found[1].id: 1003.5}
    assert switchtime.switched_after(clock, found, answered, verified=1004.0) == 13.5
    del answered[found[1].id]  # its answer was lost: the verify read's moment counts
    assert switchtime.switched_after(clock, found, answered, verified=1004.0) == 14.0


@pytest.mark.parametrize(
    ("actions", "verified"),
    [(("replaced", "error"), 1004.0), (("replaced",), None), (("unchanged",), 1004.0)],
    ids=["a table in error", "the verify read failed", "nothing switched"],
)
def test_the_rule_gives_no_figure(actions: Any, verified: Any) -> None:
    clock = switchtime.Clock(100.0, wall=110.0, monotonic=1000.0)
    assert switchtime.switched_after(clock, tables(*actions), {}, verified) is None


def test_a_hook_time_slightly_ahead_is_rounding_not_a_step() -> None:
    clock = switchtime.Clock(110.5, wall=110.0, monotonic=1000.0)
    assert clock.problem is None and clock.notified == 1000.0
    assert switchtime.Clock(112.0, wall=110.0, monotonic=1000.0).problem

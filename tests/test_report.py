"""Rendering: the text a person reads in a shell or the IRIS terminal."""

from __future__ import annotations

import json

from mirror_vip.report import Check, Report, TableResult, render_text, summary

ENI = "eni-0aaaaaaaaaaaaaaaa"
OTHER = "eni-0bbbbbbbbbbbbbbbb"


def claim_report() -> Report:
    return Report(
        command="claim",
        vip="192.168.200.10",
        label="eth0:1",
        vip_on_interface=True,
        instance_id="i-0aaaaaaaaaaaaaaaa",
        eni=ENI,
        vpc_id="vpc-0aaaaaaaaaaaaaaaa",
        region="eu-west-1",
        route_tables=[
            TableResult("rtb-0aaaaaaaaaaaaaaaa", OTHER, ENI, "replaced", main=True),
            TableResult("rtb-0bbbbbbbbbbbbbbbb", None, ENI, "created"),
            TableResult("rtb-0cccccccccccccccc", ENI, ENI, "unchanged"),
            TableResult(
                "rtb-0dddddddddddddddd", OTHER, OTHER, "error", error="UnauthorizedOperation: x"
            ),
        ],
        elapsed_s=0.412,
    ).settle()


def test_claim_text_is_aligned_and_ends_with_the_summary() -> None:
    text = render_text(claim_report())
    lines = text.splitlines()
    assert lines[0] == "mirror-vip claim"
    assert "  VIP       192.168.200.10 on eth0:1" in lines
    table_lines = [line for line in lines if line.startswith("    rtb-")]
    assert len(table_lines) == 4
    assert (
        f"replaced     {OTHER} -> {ENI} (this ENI)" in table_lines[0] and " main " in table_lines[0]
    )
    assert "error      UnauthorizedOperation: x" in table_lines[3]
    assert lines[-1] == (
        "  claim of VIP 192.168.200.10: changed 2 of 4 route table(s) in 0.41s; "
        "FAILED on rtb-0dddddddddddddddd"
    )


def test_outcome_and_exit_code() -> None:
    report = claim_report()
    assert (report.ok, report.exit_code, report.outcome) == (False, 1, "partial")
    report.route_tables = [t for t in report.route_tables if t.action == "error"]
    assert report.outcome == "failure"


def test_json_round_trip() -> None:
    report = claim_report()
    again = Report.from_dict(json.loads(report.to_json()))
    assert again == report
    assert json.loads(report.to_json())["outcome"] == "partial"


def test_doctor_text_marks_failures() -> None:
    report = Report(
        command="doctor",
        checks=[
            Check("imds", "pass", "ok"),
            Check("source_dest_check", "fail", "enabled on eni-1; fix: ..."),
            Check("vip_outside_vpc_cidr", "warn", "inside"),
        ],
    ).settle()
    text = render_text(report)
    assert "  [FAIL] source_dest_check      enabled on eni-1; fix: ..." in text
    assert "  [warn] vip_outside_vpc_cidr" in text
    assert summary(report) == "doctor: 1 check(s) failed, 1 warning(s): fix the FAIL lines above"
    assert report.exit_code == 1


def test_status_summary_counts_tables_here() -> None:
    report = Report(
        command="status",
        vip="192.168.200.10",
        eni=ENI,
        route_tables=[
            TableResult("rtb-01234567", ENI, ENI),
            TableResult("rtb-89abcdef", OTHER, OTHER),
        ],
    )
    assert summary(report) == "VIP 192.168.200.10 routed to this ENI in 1 of 2 route table(s)"

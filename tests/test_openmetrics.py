"""The metrics' names, labels and values, read back with prometheus_client's OpenMetrics parser
(a maintained implementation of the format, strict about names, units, counters and `# EOF`),
and what a report tells about where the VIP is routed."""

from __future__ import annotations

import re
from typing import Dict, List, Tuple

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from mirror_vip import cli, metrics, openmetrics
from mirror_vip.report import Report, TableResult
from tests.conftest import VIP, World

ENI = "eni-0aaaaaaaaaaaaaaaa"
OTHER = "eni-0bbbbbbbbbbbbbbbb"
NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")  # OpenMetrics ABNF: metricname
LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def parsed(text: str) -> Dict[str, Tuple[str, str, List[Tuple[str, Dict[str, str], float]]]]:
    """family name -> (type, unit, [(sample name, labels, value)])."""
    return {
        f.name: (f.type, f.unit, [(s.name, s.labels, s.value) for s in f.samples])
        for f in text_string_to_metric_families(text)
    }


def every_family_with_a_sample() -> str:
    samples: Dict[str, List[openmetrics.Sample]] = {}
    for f in metrics.FAMILIES:
        samples[f.name] = [({"id": 'rtb-"odd"\\one\nline'} if f.label else {}, 1.5)]
    return openmetrics.exposition(samples)


def test_every_family_is_valid_openmetrics_with_irises_label() -> None:
    """IRIS-only families included: the names MirrorVip.Metrics gives SetSensor are these."""
    families = parsed(every_family_with_a_sample())
    assert set(families) == {f.full_name for f in metrics.FAMILIES}
    for f in metrics.FAMILIES:
        kind, unit, samples = families[f.full_name]
        assert NAME.match(f.full_name) and kind == f.type and unit == f.unit
        assert not f.full_name.endswith("_total"), "a counter family is named without _total"
        assert f.unit == "" or f.full_name.endswith(f"_{f.unit}")
        (name, labels, value) = samples[0]
        assert name == f"{metrics.PREFIX}_{f.sample_name}" and value == 1.5
        if f.label:
            assert f.label == "id" and LABEL.match(f.label)
            assert labels == {"id": 'rtb-"odd"\\one\nline'}  # escaped and read back whole


def status_report(**changes: object) -> Report:
    report = Report(
        command="status",
        eni=ENI,
        vip_on_interface=True,
        route_tables=[
            TableResult("rtb-0aaaaaaaaaaaaaaaa", ENI, ENI, "unchanged", main=True),
            TableResult("rtb-0bbbbbbbbbbbbbbbb", OTHER, OTHER, "unchanged"),
            TableResult("rtb-0cccccccccccccccc", None, None, "unchanged"),
            TableResult("rtb-0dddddddddddddddd", None, None, "error", error="not found"),
        ],
    )
    for key, value in changes.items():
        setattr(report, key, value)
    return report.settle()


def test_a_status_shows_where_each_table_it_read_sends_the_vip() -> None:
    families = parsed(openmetrics.render(status_report(), now=1733100000.25))
    routed = families["mirrorvip_vip_routed_here"][2]
    assert sorted((s[1]["id"], s[2]) for s in routed) == [
        ("rtb-0aaaaaaaaaaaaaaaa", 1.0),
        ("rtb-0bbbbbbbbbbbbbbbb", 0.0),
        ("rtb-0cccccccccccccccc", 0.0),
    ]  # the table not found is not read: no sample
    assert families["mirrorvip_route_tables_read_timestamp_seconds"][2][0][2] == 1733100000.25
    assert families["mirrorvip_vip_on_interface"][2][0][2] == 1.0


def test_a_status_that_read_nothing_has_no_samples() -> None:
    text = openmetrics.render(status_report(route_tables=[], vip_on_interface=None, eni=None))
    assert all(samples == [] for _, _, samples in parsed(text).values())
    assert text.endswith("# EOF\n")


def claim(verified: object, *tables: TableResult) -> Report:
    return Report(command="claim", eni=ENI, verified=verified, route_tables=list(tables))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verified", "expected"),
    [
        (True, {"rtb-1": 1, "rtb-2": 1, "rtb-3": 0}),
        (False, {"rtb-2": 1}),  # the verify read failed: only the describe's table is known
        (None, {"rtb-2": 1}),
    ],
)
def test_a_claim_tells_what_its_reads_saw(verified: object, expected: Dict[str, int]) -> None:
    report = claim(
        verified,
        TableResult("rtb-1", OTHER, ENI, "replaced"),
        TableResult("rtb-2", ENI, ENI, "unchanged"),
        TableResult("rtb-3", None, OTHER, "error", error="another member claimed"),
        TableResult("rtb-4", None, None, "error", error="route table rtb-4 not found"),
    )
    assert metrics.observe(report)["routes"] == expected
    assert metrics.observe(report)["changed"] == 1


# --- the command line ----------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_openmetrics_against_ec2(
    member_a: World, capsys: pytest.CaptureFixture[str]
) -> None:
    w = member_a
    w.route(w.main_table, w.a.eni)
    w.route(w.tables[0], w.b.eni)
    code, out, err = run(capsys, "status", "--openmetrics")
    assert code == 0 and err == ""
    routed = {s[1]["id"]: s[2] for s in parsed(out)["mirrorvip_vip_routed_here"][2]}
    assert routed == {w.main_table: 1.0, w.tables[0]: 0.0, w.tables[1]: 0.0}
    assert w.targets() == {w.main_table: w.a.eni, w.tables[0]: w.b.eni, w.tables[1]: None}


def test_status_openmetrics_that_cannot_read_says_why_on_stderr(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "status", "--openmetrics", "--vip", VIP, "--interface", "nope0")
    assert code != 0 and err.startswith("mirror-vip: ") and "Traceback" not in err
    assert all(samples == [] for _, _, samples in parsed(out).values())


@pytest.mark.parametrize(
    "argv", [["claim", "--openmetrics"], ["status", "--json", "--openmetrics"]]
)
def test_openmetrics_is_for_status_alone(
    argv: List[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--openmetrics" in err


def test_the_option_is_documented_once_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0 and out.count("--openmetrics") == 2  # usage line and its description

"""The command line: options, exit codes, output, and no traceback for an expected error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mirror_vip import bridge, cli
from tests.conftest import VIP, AwsLike, World

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_claim_then_claim_again(member_a: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "claim")
    assert code == 0
    assert "changed 3 of 3 route table(s)" in out and "(this ENI)" in out
    code, out, _ = run_cli(capsys, "claim")
    assert code == 0 and "changed 0 of 3" in out


def test_json_report(member_a: World, capsys: pytest.CaptureFixture[str]) -> None:
    w = member_a
    code, out, _ = run_cli(capsys, "claim", "--json", "--route-tables", w.tables[0])
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["command"] == "claim"
    for key in ("vip", "instance_id", "eni", "vpc_id", "region", "route_tables", "checks"):
        assert key in data
    for key in ("warnings", "errors", "elapsed_s"):
        assert key in data
    assert data["route_tables"] == [
        {
            "id": w.tables[0],
            "before": None,
            "after": w.a.eni,
            "action": "created",
            "error": None,
            "state": "active",
            "main": False,
        }
    ]


def test_status_json_has_after_equal_before(
    member_a: World, capsys: pytest.CaptureFixture[str]
) -> None:
    member_a.route(member_a.main_table, member_a.b.eni)
    code, out, _ = run_cli(capsys, "status", "--json")
    tables = json.loads(out)["route_tables"]
    assert code == 0 and all(t["before"] == t["after"] for t in tables)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["claim", "--vip", "10.0.0.0/24"], "invalid vip '10.0.0.0/24'"),
        (["claim", "--vip", "fe80::1"], "IPv6"),
        (["claim", "--interface", "eth0;rm -rf /"], "invalid interface 'eth0;rm -rf /'"),
        (["release", "--route-tables", "rtb-nothex00"], "invalid route table id 'rtb-nothex00'"),
        (["status", "--deadline", "-3"], "invalid deadline '-3'"),
        (["doctor", "--route-table-tag", "justakey"], "expected Key=Value"),
        (["claim", "--config", "/nonexistent/mirror-vip.json"], "cannot read --config"),
        (["reboot"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_changed(
    aws: AwsLike, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert aws.calls == []


def test_vip_in_subnet_exits_2(
    member_a: World, aws: AwsLike, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "claim", "--vip", "10.20.2.9")
    assert code == 2 and "inside subnet" in err and aws.writes == []


def test_partial_failure_exits_1_and_names_the_table(
    member_a: World, aws: AwsLike, capsys: pytest.CaptureFixture[str]
) -> None:
    aws.deny.add(("CreateRoute", member_a.tables[0]))
    code, _, err = run_cli(capsys, "claim")
    assert code == 1 and f"FAILED on {member_a.tables[0]}" in err


def test_config_file_feeds_the_same_keys(
    member_a: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "vip.json"
    config.write_text(json.dumps({"vip": VIP, "route_tables": [member_a.tables[1]]}))
    code, out, _ = run_cli(capsys, "claim", "--config", str(config), "--json")
    assert code == 0 and [t["id"] for t in json.loads(out)["route_tables"]] == [member_a.tables[1]]


def test_help_documents_every_option() -> None:
    text = cli.build_parser().format_help()
    for option in (
        "--vip", "--interface", "--label", "--route-tables", "--route-table-tag", "--region",
        "--eni", "--deadline", "--config", "--json", "--dry-run", "--force",
    ):  # fmt: skip
        assert option in text


def test_python_dash_m_without_aws_is_a_clean_error(tmp_path: Path) -> None:
    """A real process, IMDS disabled, nothing given: exit 1, one clear error, no traceback."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "python"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "mirror_vip", "status", "--vip", VIP, "--interface", "lo"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "pass --eni and --region" in done.stderr and "Traceback" not in done.stderr


def test_bridge_never_raises_and_reports_json(aws: AwsLike) -> None:
    out = json.loads(bridge.claim('{"vip": "10.0.0.0/8"}', "{}"))
    assert out["ok"] is False and out["exit_code"] == 2 and out["outcome"] == "failure"
    assert "single address" in out["errors"][0]
    out = json.loads(bridge.status("not json", "{}"))
    assert out["exit_code"] == 2 and "invalid settings JSON" in out["errors"][0]
    text = bridge.render(json.dumps(out))
    assert "error:" in text
    assert json.loads(bridge.validate_setting("vip", '"10.1.2.3/32"')) == {
        "ok": True,
        "value": "10.1.2.3",
    }
    refused = json.loads(bridge.validate_setting("deadline", '"0"'))
    assert refused["ok"] is False and "deadline" in refused["error"]


def test_bridge_claim_moves_the_route(member_a: World) -> None:
    out = json.loads(bridge.claim("{}", json.dumps({"role": "primary", "mirror_name": "PROD"})))
    assert out["ok"] and out["outcome"] == "success" and out["iris"]["mirror_name"] == "PROD"
    assert set(member_a.targets().values()) == {member_a.a.eni}
    assert "changed 3 of 3" in bridge.summarize(json.dumps(out))


@pytest.mark.parametrize("command", ["claim", "release", "status"])
def test_a_missing_interface_is_said_once(
    member_a: World, aws: AwsLike, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, out, err = run_cli(capsys, command, "--interface", "eth9")
    said = "cannot read the addresses of interface 'eth9'"
    assert code == 1 and (out + err).count(said) == 1, err
    assert aws.calls == []


def test_a_huge_usage_error_is_shortened(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "x" * 100_000)
    assert code == 2 and err.count("\n") == 1 and len(err) < 500
    assert "invalid choice" in err and "(see --help)" in err

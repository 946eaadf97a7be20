"""role_arn and external_id: validated like every setting (one line naming the value and the fix,
exit 2, nothing sent), from the command line, a config file and IRIS's MirrorVip.Config alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirror_vip import bridge, cli, settings
from mirror_vip.errors import ConfigError
from tests.test_bad_input import CLAIM, Recorder, assert_refused, recorder, run_cli

__all__ = ["recorder"]  # the fixture, imported for the CLI tests below

ROLE = "arn:aws:iam::210987654321:role/mirror-vip-routes"


@pytest.mark.parametrize(
    "arn",
    [
        ROLE,
        "arn:aws:iam::210987654321:role/network/ha/mirror-vip-routes",  # a path
        "arn:aws-cn:iam::210987654321:role/mirror-vip",
        "arn:aws-us-gov:iam::210987654321:role/mirror-vip",
        "arn:aws-iso-b:iam::210987654321:role/a+b=c,d.e@f-g_h",
        "arn:aws:iam::210987654321:role/" + "n" * 64,
    ],
)
def test_role_arns_accepted(arn: str) -> None:
    chosen = settings.from_mapping({"role_arn": f" {arn} "})
    assert chosen.role_arn == arn
    stored = chosen.to_dict()  # what IRIS stores round-trips
    assert settings.from_mapping(stored).to_dict() == stored


@pytest.mark.parametrize(
    ("arn", "says"),
    [
        ("mirror-vip-routes", "not an IAM role ARN"),
        ("arn:aws:iam::21098765432:role/x", "not an IAM role ARN"),  # 11 digits
        ("arn:aws:iam:eu-west-1:210987654321:role/x", "not an IAM role ARN"),  # IAM has no region
        ("arn:aws:iam::210987654321:role/", "not an IAM role ARN"),
        ("arn:aws:iam::210987654321:role/" + "n" * 65, "not an IAM role ARN"),
        ("arn:aws:iam::210987654321:role/a b", "not an IAM role ARN"),
        ("arn:aws:iam::210987654321:role/réseau", "not an IAM role ARN"),
        ("arn:aws:iam::210987654321:user/alice", "names an IAM user, not a role"),
        ("arn:aws:iam::210987654321:instance-profile/x", "instance-profile, not a role"),
        ("arn:aws:sts::210987654321:assumed-role/x/i-1", "assumed-role, not a role"),
        ("arn:aws:ec2:eu-west-1:210987654321:route-table/rtb-1", "not an IAM role ARN"),
    ],
)
def test_role_arns_refused(arn: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({"role_arn": arn})
    message = str(caught.value)
    assert message.startswith("invalid role_arn") and says in message, message
    assert arn[:100] in message and "arn:aws:iam::111122223333:role/" in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["ab", "x" * 1224, "Tenant-42_prod=a,b.c@d:e/f+g"])
def test_external_ids_accepted(value: str) -> None:
    assert settings.from_mapping({"role_arn": ROLE, "external_id": value}).external_id == value


@pytest.mark.parametrize("value", ["a", "x" * 1225, "with space", "ünïcode", "semi;colon", "a\nb"])
def test_external_ids_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings.from_mapping({"role_arn": ROLE, "external_id": value})
    message = str(caught.value)
    assert message.startswith("invalid external_id") and "2 to 1224" in message
    assert "\n" not in message


def test_an_external_id_without_a_role_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="external_id is set but role_arn is not"):
        settings.from_mapping({"external_id": "abc"})
    assert settings.from_mapping({"external_id": "", "role_arn": ""}).role_arn is None


def test_iris_config_validates_both_through_the_core() -> None:
    """MirrorVip.Config.Set calls bridge.validate_setting with the stored settings."""
    ok = json.loads(bridge.validate_setting("role_arn", json.dumps(ROLE), "{}"))
    assert ok == {"ok": True, "value": ROLE}
    refused = json.loads(bridge.validate_setting("role_arn", '"arn:aws:iam::1:role/x"', "{}"))
    assert refused["ok"] is False and "invalid role_arn" in refused["error"]
    current = json.dumps({"role_arn": ROLE})
    ok = json.loads(bridge.validate_setting("external_id", '"tenant-7"', current))
    assert ok == {"ok": True, "value": "tenant-7"}
    alone = json.loads(bridge.validate_setting("external_id", '"tenant-7"', "{}"))
    assert alone["ok"] is False and "set role_arn as well" in alone["error"]
    both = json.dumps({"role_arn": ROLE, "external_id": "a1"})
    whole = json.loads(bridge.validate_settings(both))
    assert whole["settings"]["role_arn"] == ROLE and whole["settings"]["external_id"] == "a1"


def test_help_documents_both_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert "--role-arn ARN" in shown and "--external-id ID" in shown
    assert "role_arn, external_id" in shown and "mirror-vip-<instance id>" in shown


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--role-arn", "arn:aws:iam::210987654321:user/alice"], ("invalid role_arn", "user")),
        (["--role-arn", ROLE, "--external-id", "x"], ("invalid external_id", "'x'")),
        (["--external-id", "tenant-7"], ("external_id is set but role_arn is not",)),
    ],
)
def test_cli_refuses_with_one_line_and_sends_nothing(
    recorder: Recorder, tmp_path: Path, argv: list, says: tuple
) -> None:
    assert_refused(run_cli(recorder, tmp_path, [*CLAIM, *argv]), recorder, *says)


def test_a_config_file_is_refused_alike(recorder: Recorder, tmp_path: Path) -> None:
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"role_arn": "not-an-arn"}), encoding="utf-8")
    done = run_cli(recorder, tmp_path, [*CLAIM, "--config", str(config)])
    assert_refused(done, recorder, "invalid role_arn 'not-an-arn'")

"""The network settings on the command line: --proxy, --ec2-endpoint, --sts-endpoint documented
in --help, carried into the settings, and refused as bad input: one line, exit 2, nothing sent,
a proxy's password never printed."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest

from mirror_vip import cli, settings
from tests.test_bad_input import CLAIM, Recorder, assert_refused, recorder, run_cli

__all__ = ["recorder"]  # the fixture, imported for pytest

VPCE_EC2 = "https://vpce-0123456789abcdef0-abcdefgh.ec2.eu-west-1.vpce.amazonaws.com"
VPCE_STS = "https://vpce-0123456789abcdef0-abcdefgh.sts.eu-west-1.vpce.amazonaws.com"


def test_every_setting_has_an_option_and_is_listed_once() -> None:
    parser = cli.build_parser()
    text = parser.format_help()
    for key in settings.KEYS:
        option = "--" + key.replace("_", "-")
        assert f"  {option} " in text, f"no {option} option"
    listed = cli.EPILOG.split("same key names:", 1)[1].split(")", 1)[0]
    assert [k.strip() for k in listed.replace("\n", " ").split(",")] == list(settings.KEYS)
    for option in ("--proxy", "--ec2-endpoint", "--sts-endpoint"):  # described in one place
        assert text.count(f"{option} URL ") == 1


def test_the_options_reach_the_settings(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(
        [
            "status",
            "--proxy",
            "http://proxy.corp.example:3128",
            "--ec2-endpoint",
            VPCE_EC2,
            "--sts-endpoint",
            VPCE_STS,
        ]
    )
    chosen = settings.load(cli._overrides(args))
    assert (chosen.proxy, chosen.ec2_endpoint, chosen.sts_endpoint) == (
        "http://proxy.corp.example:3128",
        VPCE_EC2,
        VPCE_STS,
    )


BAD: Dict[str, List[str]] = {
    "proxy-no-port": ["--proxy", "http://proxy.corp.example"],
    "proxy-socks": ["--proxy", "socks5://proxy.corp.example:1080"],
    "proxy-password-unencoded": ["--proxy", "http://svc:pa@ss@proxy.corp.example:3128"],
    "ec2-endpoint-http": ["--ec2-endpoint", "http://ec2.eu-west-1.amazonaws.com"],
    "ec2-endpoint-of-sts": ["--ec2-endpoint", VPCE_STS],
    "sts-endpoint-path": ["--sts-endpoint", VPCE_STS + "/x"],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_network_settings_are_one_line_exit_2_nothing_sent(
    recorder: Recorder, tmp_path: Path, case: str
) -> None:
    option, value = BAD[case]
    done = run_cli(recorder, tmp_path, [*CLAIM, option, value])
    line = assert_refused(done, recorder, f"invalid {option[2:].replace('-', '_')} ")
    if "@" in value:
        assert "pa@ss" not in done.stderr + done.stdout and "svc:***@" in line
    else:
        assert repr(value) in line


def test_bad_network_settings_in_a_config_file_too(recorder: Recorder, tmp_path: Path) -> None:
    config = tmp_path / "mirror-vip.json"
    config.write_text('{"proxy": "http://svc:hunter2@proxy.corp.example"}')
    done = run_cli(recorder, tmp_path, [*CLAIM, "--config", str(config), "--json"])
    assert done.returncode == 2 and "hunter2" not in done.stdout + done.stderr
    assert "svc:***@proxy.corp.example" in done.stdout


def test_a_socks_https_proxy_in_the_environment_is_refused_unless_the_setting_replaces_it(
    recorder: Recorder, tmp_path: Path
) -> None:
    env = {"HTTPS_PROXY": "socks5://svc:hunter2@proxy.corp.example:1080"}
    done = run_cli(recorder, tmp_path, CLAIM, env)
    line = assert_refused(done, recorder, "invalid HTTPS_PROXY ", "not SOCKS", "or unset it")
    assert "hunter2" not in line
    # with the setting, HTTPS_PROXY is not botocore's to read: the run goes on (and is sent)
    done = run_cli(
        recorder, tmp_path, [*CLAIM, "--proxy", "http://127.0.0.1:9", "--deadline", "2"], env
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr

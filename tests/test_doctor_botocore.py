"""doctor checks the botocore actually imported against the floor, and says how to upgrade it.

IPM installs requirements.txt with `pip install -t <mgr>/python` and no `--upgrade`, so an older
botocore already in mgr/python stays the one imported (measured: 1.29 was kept, and it ignores
AWS_ENDPOINT_URL). boto3 1.28.0, the floor in requirements.txt, requires botocore>=1.31.0,<1.32.0
(its wheel's metadata).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict

import botocore
import pytest

from mirror_vip import doctor, settings
from mirror_vip.errors import IdentityError
from mirror_vip.report import FAIL, PASS, Report

ROOT = Path(__file__).resolve().parent.parent


def run(iris: Dict[str, Any]) -> Report:
    """The checks that run before any AWS call (the identity failed here on purpose)."""
    report = Report(command="doctor", iris=iris)
    doctor.run_checks(report, settings.from_mapping({}), None, IdentityError("no IMDS here"))
    return report


def botocore_check(report: Report) -> Any:
    (check,) = [c for c in report.checks if c.name == "botocore"]
    return check


def test_the_botocore_in_use_passes() -> None:
    check = botocore_check(run({}))
    assert check.status == PASS
    assert botocore.__version__ in check.detail
    assert str(Path(botocore.__file__).parent.parent) in check.detail


@pytest.mark.parametrize("stale", ["1.29.165", "1.30.9", "0.99.0"])
def test_a_stale_botocore_fails_with_the_ipm_fix_on_iris(stale: str, monkeypatch: Any) -> None:
    monkeypatch.setattr(botocore, "__version__", stale)
    check = botocore_check(run({"role": "primary", "mirror_name": "PROD"}))
    assert check.status == FAIL
    assert f"{stale} from {Path(botocore.__file__).parent.parent}" in check.detail
    assert 'zpm "install mirror-vip -extra-pip-flags ""--upgrade"""' in check.detail
    assert "pip install --upgrade --target" in check.detail


def test_a_stale_botocore_fails_with_the_pip_fix_on_the_command_line(monkeypatch: Any) -> None:
    monkeypatch.setattr(botocore, "__version__", "1.29.165")
    check = botocore_check(run({}))
    assert check.status == FAIL
    assert "zpm" not in check.detail
    assert re.search(r"python3 -m pip install --upgrade 'boto3>=1\.28,<2'$", check.detail)


def test_the_floor_is_the_one_boto3s_floor_requires() -> None:
    """requirements.txt says boto3>=1.28; boto3 1.28.0 requires botocore>=1.31.0."""
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert re.search(r"^boto3>=1\.28\b", requirements, re.MULTILINE)
    assert doctor.BOTOCORE_FLOOR == (1, 31, 0)

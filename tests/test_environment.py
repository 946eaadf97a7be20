"""The AWS_* variables botocore reads are input: each unusable value is one line, exit 2.

Unit tests of mirror_vip.environment.check; tests/test_bad_input.py runs the same cases through
`python -m mirror_vip` and shows that nothing reaches IMDS or EC2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

import pytest

from mirror_vip import environment
from mirror_vip.errors import ConfigError

GOOD_URLS = [
    "https://ec2.eu-west-1.amazonaws.com",
    "http://127.0.0.1:5000",
    "http://localhost:5000/",
    "http://[::1]:5000",
    "http://[fd00:ec2::254]",
    "http://169.254.169.254",
    "https://vpce-0123.ec2.eu-west-1.vpce.amazonaws.com/path",
]
URL_VARIABLES = [
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_ENDPOINT_URL_STS",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
]


@pytest.mark.parametrize("variable", URL_VARIABLES)
@pytest.mark.parametrize("url", GOOD_URLS)
def test_usable_endpoint_urls_pass(variable: str, url: str) -> None:
    environment.check({variable: url})


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("AWS_ENDPOINT_URL", "not a url", "scheme"),
        ("AWS_ENDPOINT_URL", "http://[::1", "Invalid IPv6 URL"),
        ("AWS_ENDPOINT_URL", "localhost:5000", "scheme"),
        ("AWS_ENDPOINT_URL", "http://", "host"),
        ("AWS_ENDPOINT_URL", "ftp://example.com", "http or https"),
        ("AWS_ENDPOINT_URL", "http://example.com:99999", "out of range"),
        ("AWS_ENDPOINT_URL", "http://example.com:abc", "integer"),
        ("AWS_ENDPOINT_URL", "http://a_b.example", "host"),
        ("AWS_ENDPOINT_URL", "http://x\n", "host"),
        ("AWS_ENDPOINT_URL_EC2", "%%%", "scheme"),
        ("AWS_ENDPOINT_URL_STS", "https://", "host"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://[::1", "Invalid IPv6 URL"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "169.254.169.254", "scheme"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "ipv5", "ipv4 or ipv6"),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "", "ipv4 or ipv6"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "soon", "whole number"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "", "whole number"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "1.5", "whole number"),
        ("AWS_METADATA_SERVICE_TIMEOUT", "0", "from 1 to"),
        ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "-1", "from 1 to"),
        ("AWS_METADATA_SERVICE_NUM_ATTEMPTS", "9" * 5000, "whole number"),
        ("AWS_MAX_ATTEMPTS", "three", "whole number"),
    ],
)
def test_unusable_values_are_one_line_naming_variable_value_and_fix(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        environment.check({variable: value})
    message = str(caught.value)
    assert message.startswith(f"invalid {variable} ")
    assert says in message and "\n" not in message
    assert "unset it" in message  # the fix: a usable value, or the variable unset
    assert len(message) < 400  # a huge value is shortened
    assert caught.value.exit_code == 2


def test_an_empty_endpoint_url_is_unset_as_botocore_treats_it() -> None:
    environment.check({"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EC2": ""})


def test_good_values_of_every_variable_pass(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    token = tmp_path / "token"
    token.write_text("eyJ")
    environment.check(
        {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6",
            "AWS_METADATA_SERVICE_TIMEOUT": "2",
            "AWS_METADATA_SERVICE_NUM_ATTEMPTS": " 3",
            "AWS_MAX_ATTEMPTS": "5",
            "AWS_CA_BUNDLE": str(bundle),
            "REQUESTS_CA_BUNDLE": str(bundle),
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
        }
    )
    environment.check({})


@pytest.mark.parametrize("variable", ["AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"])
def test_ca_bundle_must_be_a_regular_file(variable: str, tmp_path: Path) -> None:
    """botocore hands the path to urllib3 as a CA file (a directory fails in the TLS set-up);
    a FIFO there blocks the first HTTPS connection forever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases: Dict[str, str] = {
        str(tmp_path / "missing.pem"): "does not exist",
        str(fifo): "not a regular file",
        "/dev/zero": "not a regular file",
        str(tmp_path): "not a regular file",
        "": "empty",
    }
    for value, says in cases.items():
        with pytest.raises(ConfigError, match=f"invalid {variable} .*{says}.*unset it"):
            environment.check({variable: value})


def test_requests_ca_bundle_is_not_read_when_aws_ca_bundle_is_set(tmp_path: Path) -> None:
    """botocore takes AWS_CA_BUNDLE first; REQUESTS_CA_BUNDLE is then never read."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    environment.check({"AWS_CA_BUNDLE": str(bundle), "REQUESTS_CA_BUNDLE": "/nonexistent"})


def test_web_identity_token_file_must_be_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for value in (str(fifo), "/dev/zero", str(tmp_path), str(tmp_path / "missing")):
        with pytest.raises(ConfigError, match="invalid AWS_WEB_IDENTITY_TOKEN_FILE"):
            environment.check({"AWS_WEB_IDENTITY_TOKEN_FILE": value})


def test_ignored_endpoint_urls_are_not_checked() -> None:
    """With AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true botocore never reads them."""
    environment.check(
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": "not a url"}
    )
    with pytest.raises(ConfigError):  # the IMDS endpoint is not a "configured endpoint URL"
        environment.check(
            {
                "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": "not a url",
            }
        )


def test_a_huge_value_is_shortened_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        environment.check({"AWS_ENDPOINT_URL": "x" * 100_000})
    assert len(str(caught.value)) < 400 and "100000 characters" in str(caught.value)


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "%%%")
    with pytest.raises(ConfigError, match="AWS_ENDPOINT_URL_EC2"):
        environment.check()


# --- HTTPS_PROXY, which botocore reads for the EC2 calls when the proxy setting is unset ----


@pytest.mark.parametrize(
    "value",
    [
        "http://proxy.corp.example:3128",
        "proxy.corp.example:3128",  # botocore: http:// assumed
        "//proxy.corp.example:3128",
        "http://proxy.corp.example",  # urllib3: port 80
        "https://svc:s3cr%40t@proxy.corp.example:8443",
    ],
)
def test_usable_https_proxy_values_pass(value: str) -> None:
    environment.check({"HTTPS_PROXY": value})
    environment.check({"https_proxy": value})


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("socks5://proxy.corp.example:1080", "not SOCKS"),
        ("http://proxy.corp.example:99999", "out of range"),
        ("http://proxy corp:3128", "whitespace"),
        ("http://-x-:3128", "not a valid DNS name"),
        ("http://proxy.corp.example:3128/path", "nothing after it"),
        ("http://svc:pa/ss@proxy.corp.example:3128", "percent-encode"),
    ],
)
def test_unusable_https_proxy_is_one_line_without_its_password(value: str, says: str) -> None:
    for name in ("HTTPS_PROXY", "https_proxy"):
        with pytest.raises(ConfigError) as caught:
            environment.check({name: value})
        message = str(caught.value)
        assert message.startswith(f"invalid {name} ") and says in message
        assert "or unset it" in message and "pa/ss" not in message


def test_https_proxy_is_not_judged_when_the_proxy_setting_replaces_it() -> None:
    environment.check({"HTTPS_PROXY": "socks5://proxy.corp.example:1080"}, proxy_setting=True)


def test_the_lower_case_https_proxy_is_the_one_read() -> None:
    good, bad = "http://proxy.corp.example:3128", "socks5://proxy.corp.example:1080"
    environment.check({"https_proxy": good, "HTTPS_PROXY": bad})
    with pytest.raises(ConfigError, match="invalid https_proxy"):
        environment.check({"https_proxy": bad, "HTTPS_PROXY": good})

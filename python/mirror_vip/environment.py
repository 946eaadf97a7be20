"""The AWS_* environment variables botocore reads, checked before anything is sent.

botocore reads these lazily, deep inside the first call that needs them, and an unusable value
then surfaces as a ValueError traceback (AWS_ENDPOINT_URL=not a url), as a connection error
retried until the deadline (an endpoint with port 99999, a missing AWS_CA_BUNDLE), or as a
process blocked forever (AWS_CA_BUNDLE or AWS_WEB_IDENTITY_TOKEN_FILE naming a FIFO). They are
input like the settings: `check` refuses each with one line naming the variable, its value and
the fix (a ConfigError: exit 2, nothing sent). HTTPS_PROXY too, when the proxy setting does not
replace it: botocore fails on a SOCKS or malformed proxy only inside the first request.

URLs are judged by botocore's own tests (`is_valid_endpoint_url`, `is_valid_ipv6_endpoint_url`,
the pair `create_endpoint` and the IMDS fetcher apply) plus what they leave to the first
request: the scheme (http or https) and the port (urllib.parse's `port` range check).
"""

from __future__ import annotations

import os
import re
import stat
from typing import Mapping, Optional
from urllib.parse import urlsplit

from botocore.utils import ensure_boolean, is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from .errors import ConfigError, shown
from .urls import check_proxy_variable

# Service endpoints (botocore's ConfiguredEndpointProvider: the service's variable, then the
# global one): EC2 for the route calls, STS for a credential chain that assumes a role.
SERVICE_ENDPOINTS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_STS")
IMDS_ENDPOINT = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
IMDS_ENDPOINT_MODE = "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"
IMDS_MODES = ("ipv4", "ipv6")  # botocore.utils.METADATA_ENDPOINT_MODES, compared lower-cased
# botocore converts these with int() (its session variables metadata_service_timeout,
# metadata_service_num_attempts, max_attempts): the credential chain's IMDS provider and any
# client made without our Config read them.
WHOLE_NUMBERS = {
    "AWS_METADATA_SERVICE_TIMEOUT": "seconds",
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "attempts",
    "AWS_MAX_ATTEMPTS": "attempts",
}
_WHOLE_NUMBER = re.compile(r"\s*[0-9]{1,6}\s*")


def check(environ: Optional[Mapping[str, str]] = None, proxy_setting: bool = False) -> None:
    """Raise ConfigError for the first variable botocore would fail on; None when all are usable.

    PROXY_SETTING: the proxy setting is set, so botocore never reads HTTPS_PROXY (Config's
    proxies win) and its value is not ours to judge.
    """
    env = os.environ if environ is None else environ
    if not proxy_setting:
        # urllib's getproxies_environment, which botocore uses: the lower-case name wins
        name = next((n for n in ("https_proxy", "HTTPS_PROXY") if env.get(n)), None)
        if name is not None:
            check_proxy_variable(name, env[name])
    # botocore skips AWS_ENDPOINT_URL* when told to, and treats an empty one as unset.
    if not ensure_boolean(env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")):
        for name in SERVICE_ENDPOINTS:
            if env.get(name):
                _endpoint_url(name, env[name], "https://ec2.eu-west-1.amazonaws.com")
    if env.get(IMDS_ENDPOINT):
        _endpoint_url(IMDS_ENDPOINT, env[IMDS_ENDPOINT], "http://169.254.169.254")
    if IMDS_ENDPOINT_MODE in env and env[IMDS_ENDPOINT_MODE].lower() not in IMDS_MODES:
        raise ConfigError(
            f"invalid {IMDS_ENDPOINT_MODE} {shown(env[IMDS_ENDPOINT_MODE])}: expected ipv4 or "
            "ipv6; set one of them, or unset it"
        )
    for name, unit in WHOLE_NUMBERS.items():
        if name in env:
            _whole_number(name, env[name], unit)
    # botocore takes AWS_CA_BUNDLE, else REQUESTS_CA_BUNDLE (endpoint._get_verify_value)
    bundle = next((n for n in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE") if n in env), None)
    if bundle is not None:
        _regular_file(bundle, env[bundle], "a PEM file of CA certificates")
    if "AWS_WEB_IDENTITY_TOKEN_FILE" in env:
        _regular_file(
            "AWS_WEB_IDENTITY_TOKEN_FILE", env["AWS_WEB_IDENTITY_TOKEN_FILE"], "a token file"
        )


def _endpoint_url(name: str, url: str, example: str) -> None:
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
        accepted = is_valid_endpoint_url(url) or is_valid_ipv6_endpoint_url(url)
    except ValueError as exc:  # urllib.parse: "Invalid IPv6 URL", "Port out of range 0-65535"
        problem = str(exc)
    else:
        if parts.scheme.lower() not in ("http", "https"):
            problem = "its scheme must be http or https"
        elif not accepted:
            problem = "botocore refuses it: expected scheme://host[:port] with a valid host"
    if problem:
        raise ConfigError(
            f"invalid {name} {shown(url)}: {problem}; set it to a URL such as {example}, "
            "or unset it"
        )


def _whole_number(name: str, value: str, unit: str) -> None:
    if not _WHOLE_NUMBER.fullmatch(value) or int(value) < 1:
        raise ConfigError(
            f"invalid {name} {shown(value)}: expected a whole number of {unit} from 1 to 999999 "
            "(botocore reads it with int()); set e.g. 2, or unset it"
        )


def _regular_file(name: str, path: str, what: str) -> None:
    """A FIFO or device would block or never end when botocore reads it."""
    problem = None
    if not path.strip():
        problem = "it is empty"
    else:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            problem = "the file does not exist"
        except OSError as exc:
            problem = f"cannot read it: {exc.strerror}"
        else:
            if not stat.S_ISREG(mode):
                problem = "not a regular file"
    if problem:
        raise ConfigError(f"invalid {name} {shown(path)}: {problem}; name {what}, or unset it")

"""The URL settings `proxy`, `ec2_endpoint`, `sts_endpoint`: validated, shown without a password.

`proxy` is the HTTP proxy the AWS API calls (EC2, STS) go through, as botocore's
Config(proxies=...) takes it: http:// or https:// (the scheme of the hop to the proxy), a host
and a port; `user:password@` is allowed, because botocore sends it as Proxy-Authorization: Basic
(httpsession.ProxyConfiguration.proxy_headers_for), and only then: a user without a password
is sent no credentials at all. Special characters are percent-encoded (botocore unquotes them),
and the decoded text must be ASCII (botocore encodes the pair as ASCII: anything else raised
inside the first request). A password is never repeated: every message and every display of
the settings shows it as ***.

`ec2_endpoint` / `sts_endpoint` are the https URLs of interface VPC endpoints without private
DNS (https://vpce-0123...-abcd.ec2.eu-west-1.vpce.amazonaws.com): scheme, host, optional port,
nothing else. An endpoint name of another service is refused (the EC2 endpoint given for STS).

No botocore here: the bridge validates settings before botocore is imported. The host rule is
botocore's (`is_valid_endpoint_url`: dot-separated labels of letters, digits and inner hyphens).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Optional
from urllib.parse import SplitResult, unquote, urlsplit

from .errors import ConfigError, shown

PROXY_EXAMPLE = "http://proxy.example.com:3128"
ENDPOINT_EXAMPLES = {
    "ec2": "https://vpce-0123456789abcdef0-abcdefgh.ec2.eu-west-1.vpce.amazonaws.com",
    "sts": "https://vpce-0123456789abcdef0-abcdefgh.sts.eu-west-1.vpce.amazonaws.com",
}
MASK = "***"

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)", re.IGNORECASE)
# RFC 3986 userinfo: unreserved, percent-encoded, sub-delims and ':'
_USERINFO = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*")
_AWS_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn")


def masked(url: str) -> str:
    """URL with its password (all of its user information, when there is no user:password
    pair) replaced by ***. Safe on any text: a URL too broken to parse is masked by its last '@'."""
    head, sep, rest = url.partition("//")
    if not sep:
        head, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    shown_user = f"{user}:{MASK}" if colon else MASK
    return f"{head}{sep}{shown_user}@{host}"


def validate_proxy(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    text = _url_text("proxy", value)
    _proxy_url("proxy", text, text, require_port=True)
    return text.rstrip("/")


def check_proxy_variable(name: str, value: str) -> None:
    """NAME (HTTPS_PROXY or https_proxy) as botocore reads it (httpsession.ProxyConfiguration
    ._fix_proxy_url): a value without a scheme is taken as http://, a port may be left out."""
    text = _url_text(name, value)
    if text.startswith(("http:", "https:")):
        url = text
    else:
        url = "http:" + text if text.startswith("//") else "http://" + text
    _proxy_url(name, text, url, require_port=False)


def _proxy_url(key: str, text: str, url: str, require_port: bool) -> None:
    safe = shown(masked(text))
    if text.partition("://")[0].lower().startswith("socks"):
        raise _bad(key, safe, "botocore speaks HTTP to a proxy, not SOCKS", PROXY_EXAMPLE)
    parts = _split(key, url, safe, PROXY_EXAMPLE)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.netloc:
        problem = "expected http:// or https:// and the proxy's host"
        raise _bad(key, safe, problem, PROXY_EXAMPLE)
    _host(key, parts, safe, PROXY_EXAMPLE)
    if require_port and parts.port is None:
        raise _bad(key, safe, "the proxy's port is missing", PROXY_EXAMPLE)
    _nothing_after_host(key, parts, safe, PROXY_EXAMPLE)
    if "@" in parts.netloc:
        _credentials(key, parts, safe)


def validate_endpoint(key: str, value: Any, service: str) -> Optional[str]:
    """KEY (ec2_endpoint, sts_endpoint): an https URL of SERVICE's endpoint."""
    if value is None or value == "":
        return None
    example = ENDPOINT_EXAMPLES[service]
    text = _url_text(key, value)
    safe = shown(masked(text))
    parts = _split(key, text, safe, example)
    if parts.scheme.lower() != "https" or not parts.netloc:
        raise _bad(key, safe, "expected https:// and the endpoint's DNS name", example)
    host = _host(key, parts, safe, example)
    _nothing_after_host(key, parts, safe, example)
    other = _other_service(host, service)
    if other:
        raise _bad(key, safe, f"that is an endpoint of {other}, not {service}", example)
    return text.rstrip("/")


def _url_text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(
            f"invalid {key} {shown(value)}: expected a URL as a string; pass e.g. "
            f"{ENDPOINT_EXAMPLES.get(key.split('_')[0], PROXY_EXAMPLE)}"
        )
    text = value.strip()
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in text):
        unset = ", or unset it" if _is_variable(key) else ""
        raise ConfigError(
            f"invalid {key} {shown(masked(text))}: it contains whitespace, a control or a "
            f"non-ASCII character; percent-encode such characters (a space as %20){unset}"
        )
    return text


def _split(key: str, text: str, safe: str, example: str) -> SplitResult:
    """urlsplit's parts; the user information checked first, so that a password that breaks
    the parse (a '/' in it) is not taken for a host or port and repeated in a message."""
    userinfo, at, _ = text.partition("//")[2].rpartition("@")
    if at and key.lower() not in ("proxy", "https_proxy"):
        raise _bad(key, safe, "an endpoint URL carries no user or password", example)
    if at and not _USERINFO.fullmatch(userinfo):
        raise _bad(
            key,
            safe,
            "its user name or password has characters a URL cannot carry as they are; "
            "percent-encode them (@ as %40, / as %2F, # as %23)",
            example,
        )
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0-65535
    except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", "Port could ..."
        raise _bad(key, safe, str(exc).lower(), example) from None
    return parts


def _host(key: str, parts: SplitResult, safe: str, example: str) -> str:
    host = parts.hostname or ""
    if host.startswith("[") or ":" in host:  # urlsplit strips the brackets of an IPv6 host
        try:
            ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
            return host
        except ValueError:
            pass
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253 or not all(_LABEL.fullmatch(p) for p in name.split(".")):
        raise _bad(key, safe, "its host is not a valid DNS name or IP address", example)
    if parts.port == 0:
        raise _bad(key, safe, "port 0 is not a port", example)
    return name.lower()


def _nothing_after_host(key: str, parts: SplitResult, safe: str, example: str) -> None:
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _bad(key, safe, "expected scheme://host:port and nothing after it", example)


def _credentials(key: str, parts: SplitResult, safe: str) -> None:
    problem = None
    if not parts.username or not parts.password:
        problem = (
            "a proxy user needs a password (botocore sends credentials only as a pair); "
            "give user:password@, or neither"
        )
    elif not (unquote(parts.username).isascii() and unquote(parts.password).isascii()):
        problem = "botocore sends proxy credentials as ASCII; the decoded user or password is not"
    if problem:
        raise _bad(key, safe, problem, PROXY_EXAMPLE)


def _other_service(host: str, service: str) -> Optional[str]:
    """The service an AWS endpoint name belongs to, when it is not SERVICE: the interface
    endpoint names (vpce-ID[-ZONE].SERVICE.REGION.vpce.amazonaws.com) and the regional ones
    (SERVICE[-fips].REGION.amazonaws.com)."""
    suffix = next((s for s in _AWS_SUFFIXES if host.endswith(s)), None)
    if suffix is None:
        return None
    labels = host[: -len(suffix)].split(".")
    if labels[-1] == "vpce" and len(labels) >= 4 and labels[0].startswith("vpce-"):
        named = labels[-3]
    elif len(labels) == 2:
        named = labels[0].split("-fips", 1)[0]
    else:
        return None
    return named if named != service else None


def _bad(key: str, safe: str, problem: str, example: str) -> ConfigError:
    if _is_variable(key):
        return ConfigError(
            f"invalid {key} {safe}: {problem}; set it to a URL such as {example}, or unset it"
        )
    return ConfigError(f"invalid {key} {safe}: {problem}; pass a URL such as {example}")


def _is_variable(key: str) -> bool:
    """KEY names an environment variable (HTTPS_PROXY, https_proxy), not a setting."""
    return key.isupper() or key.endswith("_proxy")

"""The settings, validated in one place.

The CLI, a JSON file and IRIS (through the bridge) all build a `Settings` here, with the same key
names, so IRIS's MirrorVip.Config refuses exactly what the command line refuses.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .errors import ConfigError, shown
from .jsoninput import SETTINGS_BYTES, loads, read_text_file
from .urls import masked, validate_endpoint, validate_proxy

ALL_TABLES = "all"
DEFAULT_INTERFACE = "eth0"
DEFAULT_DEADLINE = 30.0
MAX_DEADLINE = 3600.0
IFNAMSIZ = 16  # the kernel's limit, including the trailing NUL

_RTB_ID = re.compile(r"^rtb-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_ENI_ID = re.compile(r"^eni-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$")
# IAM's rules ("IAM identifiers", and AssumeRole's ExternalId): a role name is 1-64 of [\w+=,.@-]
# (ASCII \w), a path "/" or "/.../" of printable ASCII, an external id 2-1224 of [\w+=,.@:/-].
_ROLE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:iam::\d{12}:role/(?:[\x21-\x7e]{0,510}/)?[\w+=,.@-]{1,64}", re.ASCII
)
_OTHER_IAM_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:(?:iam|sts)::\d{12}:(?P<kind>[a-z-]+)/", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)

KEYS = (
    "vip",
    "interface",
    "label",
    "route_tables",
    "route_table_tag",
    "region",
    "eni",
    "deadline",
    "cache_file",
    # the network path of the AWS API calls (urls.py); IMDS never goes through the proxy
    "proxy",
    "ec2_endpoint",
    "sts_endpoint",
    "role_arn",
    "external_id",
)


@dataclass(frozen=True)
class Settings:
    """What to move and where. `vip`, `region` and `eni` left as None are discovered on the host."""

    vip: Optional[str] = None
    interface: str = DEFAULT_INTERFACE
    label: str = ""  # "" means "<interface>:1"
    route_tables: Union[str, Tuple[str, ...]] = ALL_TABLES
    route_table_tag: Optional[Tuple[str, str]] = None
    region: Optional[str] = None
    eni: Optional[str] = None
    deadline: float = DEFAULT_DEADLINE
    cache_file: Optional[str] = None  # where the route-table list is remembered (cache.py)
    # the network path of the AWS API calls (urls.py): a proxy, interface endpoints without
    # private DNS; None: botocore's defaults (the environment's HTTPS_PROXY, regional names)
    proxy: Optional[str] = field(default=None, repr=False)  # may hold a password
    ec2_endpoint: Optional[str] = None
    sts_endpoint: Optional[str] = None
    # A shared VPC (assumerole.py): the route tables' owner account's role, assumed for the
    # route-table reads and writes; the external id its trust policy may require.
    role_arn: Optional[str] = None
    external_id: Optional[str] = None

    @property
    def vip_label(self) -> str:
        return self.label or f"{self.interface}:1"

    @property
    def destination(self) -> Optional[str]:
        return f"{self.vip}/32" if self.vip else None

    def with_vip(self, vip: str) -> Settings:
        return replace(self, vip=validate_vip(vip))

    def to_dict(self) -> Dict[str, Any]:
        """The settings under their public key names, as JSON-ready values."""
        tag = self.route_table_tag
        return {
            "vip": self.vip,
            "interface": self.interface,
            "label": self.vip_label,
            "route_tables": (
                self.route_tables if self.route_tables == ALL_TABLES else list(self.route_tables)
            ),
            "route_table_tag": f"{tag[0]}={tag[1]}" if tag else None,
            "region": self.region,
            "eni": self.eni,
            "deadline": self.deadline,
            "cache_file": self.cache_file,
            "proxy": self.proxy,
            "ec2_endpoint": self.ec2_endpoint,
            "sts_endpoint": self.sts_endpoint,
            "role_arn": self.role_arn,
            "external_id": self.external_id,
        }

    def shown(self) -> Dict[str, Any]:
        """to_dict() as it may be displayed: the proxy's password masked (to_dict() is what
        IRIS stores, password and all)."""
        values = self.to_dict()
        if self.proxy:
            values["proxy"] = masked(self.proxy)
        return values


# --- one validator per key: each returns the normalised value or raises ConfigError -----------


def validate_vip(value: Any) -> str:
    text = _text("vip", value).strip()
    try:
        net = ipaddress.ip_interface(text)
    except ValueError:
        raise ConfigError(
            f"invalid vip {shown(text)}: not an IPv4 address; pass one address, "
            "e.g. --vip 10.0.255.10"
        ) from None
    if net.version != 4:
        raise ConfigError(
            f"invalid vip {shown(text)}: IPv6 is not supported; the VIP is an IPv4 /32 route, "
            "pass an IPv4 address"
        )
    if net.network.prefixlen != 32:
        raise ConfigError(
            f"invalid vip {shown(text)}: a VIP is a single address (/32); "
            f"pass one address such as {net.ip}"
        )
    addr = net.ip
    problem = None
    if addr.is_unspecified:
        problem = "0.0.0.0 is the unspecified address"
    elif addr.is_loopback:
        problem = "a loopback address never leaves the host"
    elif addr.is_link_local:
        problem = "169.254.0.0/16 is link-local (AWS uses it for IMDS and DNS)"
    elif addr.is_multicast:
        problem = "a multicast address cannot be routed to one instance"
    elif addr.is_reserved or addr == ipaddress.IPv4Address("255.255.255.255"):
        problem = "the address is reserved or broadcast"
    if problem:
        raise ConfigError(f"invalid vip {shown(text)}: {problem}; pass a unicast IPv4 address")
    return str(addr)


def _kernel_name(key: str, value: Any) -> str:
    """The kernel's rule for device names (dev_valid_name): 1-15 bytes, not '.' or '..',
    no '/', no whitespace. We also refuse non-printable and non-ASCII characters."""
    text = _text(key, value)
    bad = None
    if not text:
        bad = "it is empty"
    elif len(text.encode()) >= IFNAMSIZ:
        bad = f"it is longer than {IFNAMSIZ - 1} characters"
    elif text in (".", ".."):
        bad = "'.' and '..' are not names"
    elif any(c == "/" or c.isspace() or not c.isprintable() or not c.isascii() for c in text):
        bad = "it contains '/', whitespace or a non-printable character"
    if bad:
        raise ConfigError(
            f"invalid {key} {shown(text)}: {bad}; pass a Linux interface name such as eth0"
        )
    return text


def validate_interface(value: Any) -> str:
    name = _kernel_name("interface", value)
    if ":" in name:
        raise ConfigError(
            f"invalid interface {name!r}: ':' belongs to a label, not an interface; "
            f"pass --interface {name.split(':')[0]} --label {name}"
        )
    return name


def validate_label(value: Any, interface: str = DEFAULT_INTERFACE) -> str:
    label = _kernel_name("label", value)
    if not label.startswith(interface):
        # our convention (older iproute2 enforced it): labels are named after their interface
        raise ConfigError(
            f"invalid label {label!r}: a label must begin with the interface name "
            f"{interface!r}; pass e.g. --label {interface}:1"
        )
    return label


def validate_route_tables(value: Any) -> Union[str, Tuple[str, ...]]:
    if value is None:
        return ALL_TABLES
    if isinstance(value, str):
        if value.strip().lower() == ALL_TABLES:
            return ALL_TABLES
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [_text("route_tables", v).strip() for v in value]
    else:
        raise ConfigError(
            f"invalid route_tables {shown(value)}: pass 'all' or route table ids such as "
            "rtb-0123456789abcdef0,rtb-0fedcba9876543210"
        )
    ids: Dict[str, None] = {}
    for item in items:
        if not _RTB_ID.match(item):
            raise ConfigError(
                f"invalid route table id {shown(item)}: expected 'rtb-' and 8 or 17 lowercase hex "
                "digits, or 'all'"
            )
        ids[item] = None
    if not ids:
        raise ConfigError("invalid route_tables: the list is empty; pass 'all' or table ids")
    return tuple(ids)


def validate_route_table_tag(value: Any) -> Optional[Tuple[str, str]]:
    if value is None or value == "":
        return None
    text = _text("route_table_tag", value)
    key, sep, val = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"invalid route_table_tag {shown(text)}: expected Key=Value, e.g. mirror-vip=prod"
        )
    if not text.isprintable():
        raise ConfigError(
            f"invalid route_table_tag {shown(text)}: it contains a control character; "
            "pass printable Key=Value text"
        )
    if len(key) > 128 or len(val) > 256 or key.lower().startswith("aws:"):
        raise ConfigError(
            f"invalid route_table_tag {shown(text)}: tag keys are at most 128 characters, values "
            "at most 256, and 'aws:' keys are AWS's own"
        )
    return key, val


def validate_region(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    text = _text("region", value).strip()
    if not _REGION.match(text):
        raise ConfigError(f"invalid region {shown(text)}: expected a region name such as eu-west-1")
    return text


def validate_eni(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    text = _text("eni", value).strip()
    if not _ENI_ID.match(text):
        raise ConfigError(
            f"invalid eni {shown(text)}: expected 'eni-' and 8 or 17 lowercase hex digits"
        )
    return text


def validate_deadline(value: Any) -> float:
    if value is None or value == "":
        return DEFAULT_DEADLINE
    try:
        if isinstance(value, bool):
            raise ValueError
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        raise ConfigError(
            f"invalid deadline {shown(value)}: expected seconds, e.g. --deadline 30"
        ) from None
    if not math.isfinite(seconds) or not 1 <= seconds <= MAX_DEADLINE:
        raise ConfigError(
            f"invalid deadline {shown(value)}: expected between 1 and {MAX_DEADLINE:g} seconds"
        )
    return seconds


def validate_cache_file(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    text = _text("cache_file", value)
    if not text.startswith("/") or "\0" in text or text.endswith("/"):
        raise ConfigError(
            f"invalid cache_file {shown(text)}: expected an absolute file path, "
            "e.g. /usr/irissys/mgr/mirror-vip/route-tables.json"
        )
    return text


def validate_role_arn(value: Any) -> Optional[str]:
    """The ARN of an IAM role (any partition, any path): the route tables' owner account's."""
    if value is None or value == "":
        return None
    text = _text("role_arn", value).strip()
    if _ROLE_ARN.fullmatch(text) and len(text) <= 2048:  # AssumeRole's RoleArn: 20-2048
        return text
    other = _OTHER_IAM_ARN.match(text)
    if other and other.group("kind") != "role":
        problem = f"that names an IAM {other.group('kind')}, not a role"
    else:
        problem = "not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME)"
    raise ConfigError(
        f"invalid role_arn {shown(text)}: {problem}; pass the ARN of the route tables' owner "
        "account's role, e.g. arn:aws:iam::111122223333:role/mirror-vip-routes"
    )


def validate_external_id(value: Any) -> Optional[str]:
    if value is None or value == "":
        return None
    text = _text("external_id", value)
    if not _EXTERNAL_ID.fullmatch(text):
        raise ConfigError(
            f"invalid external_id {shown(text)}: AWS accepts 2 to 1224 characters of letters, "
            "digits and +=,.@:/-_ ; pass the value the owner account's trust policy requires "
            "(sts:ExternalId)"
        )
    return text


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"invalid {key} {shown(value)}: expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: a non-UTF-8 byte from the shell, or JSON's
        raise ConfigError(  # "\ud800"; neither EC2 nor a JSON report can carry it
            f"invalid {key} {shown(value)}: not valid UTF-8 text; pass UTF-8 text"
        ) from None
    return value


# --- building Settings ----------------------------------------------------------------------


def from_mapping(values: Mapping[str, Any]) -> Settings:
    """Validate a mapping of public keys (None = not given) into Settings."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"unknown setting {shown(unknown[0])}; the settings are: {', '.join(KEYS)}"
        )
    given = {k: v for k, v in values.items() if v is not None}
    interface = validate_interface(given.get("interface", DEFAULT_INTERFACE))
    label = validate_label(given["label"], interface) if "label" in given else ""
    return Settings(
        vip=validate_vip(given["vip"]) if given.get("vip") not in (None, "") else None,
        interface=interface,
        label=label,
        route_tables=validate_route_tables(given.get("route_tables")),
        route_table_tag=validate_route_table_tag(given.get("route_table_tag")),
        region=validate_region(given.get("region")),
        eni=validate_eni(given.get("eni")),
        deadline=validate_deadline(given.get("deadline")),
        cache_file=validate_cache_file(given.get("cache_file")),
        proxy=validate_proxy(given.get("proxy")),
        ec2_endpoint=validate_endpoint("ec2_endpoint", given.get("ec2_endpoint"), "ec2"),
        sts_endpoint=validate_endpoint("sts_endpoint", given.get("sts_endpoint"), "sts"),
        **_role(given),
    )


def _role(given: Mapping[str, Any]) -> Dict[str, Optional[str]]:
    """role_arn and external_id: an external id without a role would be sent nowhere."""
    role_arn = validate_role_arn(given.get("role_arn"))
    external_id = validate_external_id(given.get("external_id"))
    if external_id and not role_arn:
        raise ConfigError(
            "external_id is set but role_arn is not: an external id goes with the role it "
            "is required by; set role_arn as well, or unset external_id"
        )
    return {"role_arn": role_arn, "external_id": external_id}


def parse_json(
    text: Any, origin: str = "settings JSON", expected: str = "a JSON object of settings"
) -> Dict[str, Any]:
    """A JSON object from outside (bounded: jsoninput); empty text is an empty object."""
    if isinstance(text, str) and not text.strip():
        return {}
    data = loads(text, origin, expected, SETTINGS_BYTES)
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {origin}: it is a JSON {_json_kind(data)}; expected {expected}")
    return data


def _json_kind(value: Any) -> str:
    kinds = {list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def from_json(text: str) -> Settings:
    return from_mapping(parse_json(text))


def load(overrides: Mapping[str, Any], config_file: Optional[str] = None) -> Settings:
    """Settings from a JSON file, with the command line's values (non-None) on top."""
    values: Dict[str, Any] = {}
    if config_file is not None:  # "" too: an empty path is a mistake, not "no file"
        where = f"--config {shown(config_file)}"
        values.update(parse_json(read_text_file(config_file, where, SETTINGS_BYTES), where))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_mapping(values)


def validate_one(key: str, value: Any, current: Optional[Mapping[str, Any]] = None) -> Any:
    """Validate one key in the context of the other settings; return its public JSON value.

    What IRIS's MirrorVip.Config calls before it stores a value.
    """
    values = dict(current or {})
    values[key] = value
    if key not in KEYS:
        from_mapping({key: value})  # raises the "unknown setting" error
    return from_mapping(values).to_dict()[key]


__all__ = [
    "ALL_TABLES",
    "KEYS",
    "Settings",
    "from_json",
    "from_mapping",
    "load",
    "validate_one",
]

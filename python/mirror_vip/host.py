"""Local facts about the interface carrying the VIP, read without a shell.

Addresses come from `ip -j -4 addr show dev IF` (iproute2's JSON), the MAC from sysfs.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .errors import HostError

SYS_CLASS_NET = Path("/sys/class/net")
IP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Address:
    address: str
    prefixlen: int
    label: Optional[str]


def parse_ip_json(text: str) -> List[Address]:
    """The IPv4 addresses in `ip -j -4 addr show` output, with their labels."""
    try:
        links = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise HostError(f"cannot parse `ip -j` output: {exc.msg}") from None
    found: List[Address] = []
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if info.get("family", "inet") != "inet" or "local" not in info:
                continue
            found.append(
                Address(
                    address=str(info["local"]),
                    prefixlen=int(info.get("prefixlen", 32)),
                    label=info.get("label"),
                )
            )
    return found


def addresses(interface: str) -> List[Address]:
    try:
        done = subprocess.run(
            ["ip", "-j", "-4", "addr", "show", "dev", interface],
            capture_output=True,
            text=True,
            timeout=IP_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise HostError("the `ip` command (iproute2) is not installed; install iproute2") from None
    except subprocess.TimeoutExpired:
        raise HostError(
            f"`ip addr show dev {interface}` did not answer in {IP_TIMEOUT_S:g}s"
        ) from None
    if done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()
        raise HostError(
            f"cannot read the addresses of interface {interface!r}: "
            f"{detail[0] if detail else 'ip exited ' + str(done.returncode)}; "
            "pass --interface with an existing interface"
        )
    return parse_ip_json(done.stdout)


def labelled_address(found: List[Address], label: str) -> Optional[str]:
    for addr in found:
        if addr.label == label:
            return addr.address
    return None


def has_address(found: List[Address], vip: str) -> bool:
    return any(addr.address == vip for addr in found)


def mac_address(interface: str) -> str:
    path = SYS_CLASS_NET / interface / "address"
    try:
        return path.read_text(encoding="ascii").strip().lower()
    except OSError:
        raise HostError(
            f"interface {interface!r} not found ({path} unreadable); "
            "pass --interface with the interface that carries the VIP"
        ) from None

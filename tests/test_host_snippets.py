"""The alias-address snippets in docs/host/ say what they mean.

Files: the netplan YAML and the systemd-networkd drop-in parse and carry the VIP as a /32 with
the label <interface>:1; where `netplan` is installed, `netplan generate` turns the YAML,
merged with a cloud-init style file, into the same networkd [Address] section; the nmcli
script appends the address to the profile (checked with `nmcli --offline` where installed).

Kernel semantics, in real network namespaces (root and `ip netns` only; skipped otherwise):
the documented `ip addr add VIP/32 dev eth0 label eth0:1`, what NetworkManager does instead
(no label), the source-address trap, and a client reaching the VIP over a /32 route as the
VPC route table routes it. Every namespace is named mvtest-host-* and always deleted.
"""

from __future__ import annotations

import configparser
import ipaddress
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml

from mirror_vip import host

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "docs" / "host"
NETPLAN = HOST / "netplan" / "60-mirror-vip.yaml"
NETWORKD = HOST / "systemd-networkd" / "60-mirror-vip.conf"
NMCLI_SCRIPT = HOST / "networkmanager" / "mirror-vip-nmcli.sh"
TEMPLATE = ROOT / "docs" / "aws" / "mirror-vip.yaml"

VIP = "192.168.255.10"  # the template's default, used in every snippet
IFNAMSIZ = 16


def template_default_vip() -> str:
    text = TEMPLATE.read_text(encoding="utf-8")
    match = re.search(r"^  VipAddress:\n(?:    .*\n)*?    Default: (\S+)$", text, re.M)
    assert match, "VipAddress parameter with a Default not found in the template"
    return match.group(1)


# --- files ----------------------------------------------------------------------------------


def netplan_addresses(doc: Dict[str, Any]) -> List[Tuple[str, str, Dict[str, Any]]]:
    """(interface, address, options) for each address in a netplan document."""
    found = []
    for name, config in doc["network"]["ethernets"].items():
        for entry in config.get("addresses", []):
            if isinstance(entry, dict):
                ((address, options),) = entry.items()
            else:
                address, options = entry, {}
            found.append((str(name), str(address), dict(options or {})))
    return found


def networkd_addresses(text: str) -> List[Tuple[str, str]]:
    """(Address, Label) of each [Address] section of a .network file or drop-in."""
    found = []
    section: Dict[str, str] = {}
    name = ""
    for raw in [*text.splitlines(), "[End]"]:
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if name == "Address":
                found.append((section.get("Address", ""), section.get("Label", "")))
            name, section = line.strip("[]"), {}
            continue
        key, _, value = line.partition("=")
        section[key.strip()] = value.strip()
    return found


def assert_vip_label(interface: str, address: str, label: str) -> None:
    net = ipaddress.ip_interface(address)
    assert str(net.ip) == VIP and net.network.prefixlen == 32, f"{address}: the VIP as a /32"
    assert label == f"{interface}:1", f"label {label!r}: mirror-vip's default is {interface}:1"
    assert len(label.encode()) < IFNAMSIZ, "the kernel limits labels to 15 bytes"


def test_snippets_use_the_template_vip() -> None:
    assert template_default_vip() == VIP


def test_netplan_snippet_carries_the_vip_with_its_label() -> None:
    doc = yaml.safe_load(NETPLAN.read_text(encoding="utf-8"))
    assert doc["network"]["version"] == 2
    (entry,) = netplan_addresses(doc)
    interface, address, options = entry
    assert set(options) == {"label"}
    assert_vip_label(interface, address, options["label"])
    config = doc["network"]["ethernets"][interface]
    assert set(config) == {"addresses"}, "only add the address: DHCP stays in cloud-init's file"


def test_networkd_dropin_carries_the_vip_with_its_label() -> None:
    text = NETWORKD.read_text(encoding="utf-8")
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    assert parser.sections() == ["Address"], "a drop-in adds one [Address] and nothing else"
    ((address, label),) = networkd_addresses(text)
    assert_vip_label(label.split(":")[0], address, label)


def test_nmcli_script_appends_the_address_and_reapplies() -> None:
    subprocess.run(["bash", "-n", str(NMCLI_SCRIPT)], check=True, timeout=10)
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", "-S", "style", str(NMCLI_SCRIPT)], check=True, timeout=60)
    text = NMCLI_SCRIPT.read_text(encoding="utf-8")
    assert re.search(r'connection modify "\$CONN" \+ipv4\.addresses "\$VIP/32"', text), (
        "append with +ipv4.addresses: a plain ipv4.addresses would replace the profile's list"
    )
    assert re.search(r'device reapply "\$IFACE"', text)
    assert os.access(NMCLI_SCRIPT, os.X_OK), "the script is meant to be run as is"


@pytest.mark.skipif(shutil.which("netplan") is None, reason="netplan is not installed here")
def test_netplan_generate_merges_with_cloud_init(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "netplan"
    conf.mkdir(parents=True)
    cloud_init = {
        "network": {
            "version": 2,
            "ethernets": {
                "ens5": {
                    "dhcp4": True,
                    "match": {"macaddress": "02:00:00:aa:bb:cc"},
                    "set-name": "ens5",
                }
            },
        }
    }
    (conf / "50-cloud-init.yaml").write_text(yaml.safe_dump(cloud_init), encoding="utf-8")
    shutil.copy(NETPLAN, conf / "60-mirror-vip.yaml")
    for path in conf.iterdir():
        path.chmod(0o600)
    done = subprocess.run(
        ["netplan", "generate", "--root-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    generated = (tmp_path / "run" / "systemd" / "network" / "10-netplan-ens5.network").read_text(
        encoding="utf-8"
    )
    assert re.search(r"^DHCP=ipv4$", generated, re.M), "cloud-init's DHCP must survive the merge"
    assert "PermanentMACAddress=02:00:00:aa:bb:cc" in generated
    assert networkd_addresses(generated) == [(f"{VIP}/32", "ens5:1")]


@pytest.mark.skipif(shutil.which("nmcli") is None, reason="nmcli is not installed here")
def test_nmcli_append_keeps_dhcp_and_adds_the_vip() -> None:
    profile = ["type", "ethernet", "con-name", "System eth0", "ifname", "eth0"]
    base = subprocess.run(
        ["nmcli", "--offline", "connection", "add", *profile, "ipv4.method", "auto"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    added = subprocess.run(
        ["nmcli", "--offline", "connection", "modify", "+ipv4.addresses", f"{VIP}/32"],
        input=base,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    ipv4 = added.split("[ipv4]", 1)[1].split("\n[", 1)[0]
    assert f"address1={VIP}/32" in ipv4
    assert "method=auto" in ipv4, "DHCP stays on"
    removed = subprocess.run(
        ["nmcli", "--offline", "connection", "modify", "-ipv4.addresses", f"{VIP}/32"],
        input=added,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert VIP not in removed, "the documented undo removes it again"


# --- network namespaces ---------------------------------------------------------------------

_names = itertools.count()


def _netns_unavailable() -> str:
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "needs root for `ip netns`"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return ""


def ip(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10, check=check
    )


def run_in(ns: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def addr_info(ns: str, dev: str) -> List[Dict[str, Any]]:
    links = json.loads(ip(ns, "-j", "-4", "addr", "show", "dev", dev).stdout)
    return [info for link in links for info in link.get("addr_info", [])]


def route_source(ns: str, destination: str) -> str:
    found = json.loads(ip(ns, "-j", "route", "get", destination).stdout)
    return str(found[0]["prefsrc"])


class Namespaces:
    """Creates mvtest-host-* namespaces and deletes every one of them at the end."""

    def __init__(self) -> None:
        self.created: List[str] = []

    def new(self, role: str) -> str:
        name = f"mvtest-host-{os.getpid()}-{next(_names)}-{role}"[:40]
        done = subprocess.run(
            ["ip", "netns", "add", name], capture_output=True, text=True, timeout=10, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot create a network namespace: {done.stderr.strip()}")
        self.created.append(name)
        ip(name, "link", "set", "lo", "up")
        return name

    def member(self, dev: str = "eth0", primary: str = "10.0.1.10/24") -> str:
        """A namespace with DEV (one end of a veth pair) up and PRIMARY on it."""
        ns = self.new("member")
        ip(ns, "link", "add", dev, "type", "veth", "peer", "name", "peer0")
        ip(ns, "link", "set", dev, "up")
        ip(ns, "link", "set", "peer0", "up")
        if primary:
            ip(ns, "addr", "add", primary, "dev", dev)
        return ns

    def delete_all(self) -> None:
        for name in reversed(self.created):
            subprocess.run(
                ["ip", "netns", "del", name], capture_output=True, timeout=10, check=False
            )


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    spaces = Namespaces()
    try:
        yield spaces
    finally:
        spaces.delete_all()


@pytest.mark.netns
def test_ip_addr_add_with_label_is_what_the_core_reads(netns: Namespaces) -> None:
    ns = netns.member()
    ip(ns, "addr", "add", f"{VIP}/32", "dev", "eth0", "label", "eth0:1")
    vip = [i for i in addr_info(ns, "eth0") if i["local"] == VIP]
    assert vip and vip[0]["prefixlen"] == 32 and vip[0]["label"] == "eth0:1"
    found = host.parse_ip_json(ip(ns, "-j", "-4", "addr", "show", "dev", "eth0").stdout)
    assert host.labelled_address(found, "eth0:1") == VIP, "the core discovers the VIP by label"
    main = json.loads(ip(ns, "-j", "route", "show", "table", "main").stdout)
    assert not [r for r in main if r["dst"].startswith(VIP)], "a /32 adds no prefix route"
    again = ip(ns, "addr", "add", f"{VIP}/32", "dev", "eth0", "label", "eth0:1", check=False)
    assert again.returncode != 0, "add is not idempotent: scripts use `ip addr replace`"
    ip(ns, "addr", "replace", f"{VIP}/32", "dev", "eth0", "label", "eth0:1")
    assert len([i for i in addr_info(ns, "eth0") if i["local"] == VIP]) == 1


@pytest.mark.netns
def test_the_snippets_addresses_are_accepted_by_the_kernel(netns: Namespaces) -> None:
    ((address, label),) = networkd_addresses(NETWORKD.read_text(encoding="utf-8"))
    ns = netns.member(dev=label.split(":")[0])
    ip(ns, "addr", "add", address, "dev", label.split(":")[0], "label", label)
    doc = yaml.safe_load(NETPLAN.read_text(encoding="utf-8"))
    ((dev, net_address, options),) = netplan_addresses(doc)
    ns2 = netns.member(dev=dev)
    ip(ns2, "addr", "add", net_address, "dev", dev, "label", options["label"])
    for space, dev_name, want in ((ns, label.split(":")[0], label), (ns2, dev, options["label"])):
        labels = {i["local"]: i["label"] for i in addr_info(space, dev_name)}
        assert labels[VIP] == want


@pytest.mark.netns
def test_the_kernel_refuses_labels_of_16_bytes_or_more(netns: Namespaces) -> None:
    """IFNAMSIZ bounds a label as it bounds an interface name. (Whether a label must begin
    with the interface name depends on the iproute2 release: 6.1 accepts any; mirror-vip's
    settings keep the <interface>:N convention, which every release accepts.)"""
    ns = netns.member()
    too_long = "eth0:" + "x" * (IFNAMSIZ - len("eth0:"))
    refused = ip(ns, "addr", "add", f"{VIP}/32", "dev", "eth0", "label", too_long, check=False)
    assert refused.returncode != 0 and VIP not in json.dumps(addr_info(ns, "eth0"))
    fits = too_long[:-1]
    ip(ns, "addr", "add", f"{VIP}/32", "dev", "eth0", "label", fits)
    assert {i["local"]: i["label"] for i in addr_info(ns, "eth0")}[VIP] == fits


@pytest.mark.netns
def test_networkmanager_adds_the_vip_without_a_label(netns: Namespaces) -> None:
    """What `nmcli ... +ipv4.addresses VIP/32` leaves on the interface: no label. The core
    then cannot discover the VIP by label; it finds it by address when `vip` is set."""
    ns = netns.member()
    ip(ns, "addr", "add", f"{VIP}/32", "dev", "eth0")
    found = host.parse_ip_json(ip(ns, "-j", "-4", "addr", "show", "dev", "eth0").stdout)
    assert host.labelled_address(found, "eth0:1") is None
    assert host.has_address(found, VIP)
    ip(ns, "addr", "change", f"{VIP}/32", "dev", "eth0", "label", "eth0:1")
    labels = {i["local"]: i["label"] for i in addr_info(ns, "eth0")}
    assert labels[VIP] == "eth0", "a label cannot be changed in place: delete and add again"


@pytest.mark.netns
def test_a_prefix_wider_than_32_routes_a_range_from_the_vip(netns: Namespaces) -> None:
    """The seed article's PREFIX=27 adds a connected route for the whole /27 with the VIP as
    source; /32 adds none."""
    ns = netns.member()
    ip(ns, "addr", "add", "10.109.10.254/27", "dev", "eth0", "label", "eth0:1")
    assert route_source(ns, "10.109.10.230") == "10.109.10.254"


@pytest.mark.netns
def test_source_address_trap_and_its_fix(netns: Namespaces) -> None:
    """With the VIP configured before the primary address (static addresses come up before the
    DHCP lease), a device route without a gateway or `src` sends from the VIP; a route via a
    gateway, or one with `src`, sends from the primary address."""
    ns = netns.member(primary="")
    ip(ns, "addr", "add", f"{VIP}/32", "dev", "eth0", "label", "eth0:1")
    ip(ns, "addr", "add", "10.0.1.10/24", "dev", "eth0")
    ip(ns, "route", "add", "default", "via", "10.0.1.1", "dev", "eth0")
    ip(ns, "route", "add", "172.16.0.0/16", "dev", "eth0")
    assert route_source(ns, "172.16.5.5") == VIP, "the trap: outgoing traffic from the VIP"
    assert route_source(ns, "198.51.100.7") == "10.0.1.10", "via a gateway: primary address"
    assert route_source(ns, "10.0.1.20") == "10.0.1.10", "on the subnet: primary address"
    ip(ns, "route", "replace", "172.16.0.0/16", "dev", "eth0", "src", "10.0.1.10")
    assert route_source(ns, "172.16.5.5") == "10.0.1.10", "the fix: src on the route"


SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 1972))
s.listen(1)
s.settimeout(8)
print("ready", flush=True)
c, peer = s.accept()
c.sendall(("%s %s" % (c.getsockname()[0], peer[0])).encode())
c.close()
"""

CLIENT = """
import socket, sys
for attempt in range(50):
    try:
        c = socket.create_connection((sys.argv[1], 1972), timeout=2)
        break
    except OSError:
        import time; time.sleep(0.1)
else:
    raise SystemExit("no connection")
print(c.recv(100).decode())
"""


@pytest.mark.netns
def test_a_client_reaches_the_vip_through_a_32_route(netns: Namespaces) -> None:
    """The VPC in miniature: the client's route table sends VIP/32 to the member's primary
    address (what ReplaceRoute does for the ENI); the member answers from the VIP."""
    member = netns.new("member")
    client = netns.new("client")
    ip(member, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client)
    ip(member, "addr", "add", "10.0.1.10/24", "dev", "eth0")
    ip(member, "addr", "add", f"{VIP}/32", "dev", "eth0", "label", "eth0:1")
    ip(client, "addr", "add", "10.0.1.20/24", "dev", "eth0")
    for space in (member, client):
        ip(space, "link", "set", "eth0", "up")
    ip(client, "route", "add", f"{VIP}/32", "via", "10.0.1.10")
    server = subprocess.Popen(
        ["ip", "netns", "exec", member, sys.executable, "-c", SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        answer = run_in(client, sys.executable, "-c", CLIENT, VIP).stdout.split()
        assert answer == [VIP, "10.0.1.20"], "the member answers as the VIP, to the client"
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


# --- the template's user data, run for real in a namespace, with the tools stubbed -----------

STUB = """#!/bin/bash
echo "$(basename "$0") $*" >> "{log}"
{body}
"""
STUB_BODIES = {
    "netplan": 'cp "{etc}/netplan/60-mirror-vip.yaml" "{out}/netplan-applied.yaml"',
    "nmcli": '[ "$1" = -g ] && echo "Wired connection 1"; exit 0',
    "networkctl": (
        '[ "$1" = status ] && echo "   Network File: /run/systemd/network/10-netplan-$2.network"'
        "; exit 0"
    ),
}
REAL_TOOLS = ("ip", "awk", "cat", "install", "mkdir", "basename", "cp", "dirname")


def template_user_data() -> str:
    """MemberA's user data with the template's Fn::Sub done for the default VIP."""
    from cfnlint.decode import cfn_yaml

    doc = cfn_yaml.loads(TEMPLATE.read_text(encoding="utf-8"), str(TEMPLATE))
    text = str(doc["Resources"]["MemberA"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"])
    return re.sub(r"\$\{!(\w+)\}", r"${\1}", text.replace("${VipAddress}", VIP))


@pytest.mark.netns
@pytest.mark.parametrize("manager", ["netplan", "nmcli", "networkctl"])
def test_user_data_configures_the_default_route_interface(
    netns: Namespaces, tmp_path: Path, manager: str
) -> None:
    ns = netns.member(dev="ens5")
    ip(ns, "route", "add", "default", "via", "10.0.1.1", "dev", "ens5")
    etc, out, bin_dir = tmp_path / "etc", tmp_path / "out", tmp_path / "bin"
    for path in (etc / "netplan", etc / "systemd" / "network", out, bin_dir):
        path.mkdir(parents=True)
    for tool in REAL_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the user data"
        (bin_dir / tool).symlink_to(found)
    log = out / "calls.log"
    stub = bin_dir / manager
    body = STUB_BODIES[manager].format(etc=etc, out=out)
    stub.write_text(STUB.format(log=log, body=body), encoding="utf-8")
    stub.chmod(0o755)
    script = tmp_path / "user-data.sh"
    script.write_text(template_user_data().replace("/etc/", f"{etc}/"), encoding="utf-8")
    done = subprocess.run(
        ["ip", "netns", "exec", ns, "/bin/bash", str(script)],
        env={"PATH": str(bin_dir), "LANG": "C"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    calls = log.read_text(encoding="utf-8").splitlines()
    if manager == "netplan":
        assert calls == ["netplan apply"]
        written = yaml.safe_load((out / "netplan-applied.yaml").read_text(encoding="utf-8"))
        assert written == yaml.safe_load(NETPLAN.read_text(encoding="utf-8"))
        assert (etc / "netplan" / "60-mirror-vip.yaml").stat().st_mode & 0o077 == 0
    elif manager == "nmcli":
        assert calls == [
            "nmcli -g GENERAL.CONNECTION device show ens5",
            f"nmcli connection modify Wired connection 1 +ipv4.addresses {VIP}/32",
            "nmcli device reapply ens5",
        ]
    else:
        assert calls == [
            "networkctl status ens5",
            "networkctl reload",
            "networkctl reconfigure ens5",
        ]
        dropin = etc / "systemd" / "network" / "10-netplan-ens5.network.d" / "60-mirror-vip.conf"
        documented = networkd_addresses(NETWORKD.read_text(encoding="utf-8"))
        assert networkd_addresses(dropin.read_text(encoding="utf-8")) == [
            (address, label.replace("eth0", "ens5")) for address, label in documented
        ]

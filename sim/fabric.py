"""The simulated VPC in network namespaces: a router, a client and two IRIS members.

                      +------------------- router (the VPC's routing) --------------------+
                      | lo 198.18.0.10:443: the EC2 endpoint (our fake AWS's proxy, HTTPS) |
                      | to-a 10.109.10.1/26    to-b 10.109.10.65/26    to-c 10.109.10.129/26 |
                      | 192.168.255.10/32 (the VIP) via the member that the client subnet's |
                      |   route table points at; blackhole when it has no VIP route         |
                      +-------|----------------------|-----------------------|-------------+
         memberA: eth0 10.109.10.10/26   memberB: eth0 10.109.10.74/26   client: eth0 .140/26
                  eth0:1 192.168.255.10/32        eth0:1 192.168.255.10/32
                  lo 169.254.169.254 (IMDS)       lo 169.254.169.254 (IMDS)
                  VIP:1972 answers "memberA"      VIP:1972 answers "memberB"

(The addresses are the default `world.Layout`, i.e. the template's parameters; the client sits
in the template's arbiter subnet.) Each member's eth0 carries the MAC of its ENI in the fake AWS
and the member has its own IMDS emulator, so the product finds its identity exactly as on EC2:
its only test settings are AWS_ENDPOINT_URL and AWS_CA_BUNDLE (the fake AWS's `env()`: it
serves HTTPS with a certificate from the test CA, sim/tls.py). The fake AWS, the IMDS emulators
and the members' TCP services run in this process, on sockets opened inside the namespaces
(`netns.in_netns`); everything stays inside our namespaces and on loopback.

The router follows the client subnet's route table: when a route write to that table lands in the
fake AWS (its `on_write` hook), a worker thread replaces the router's kernel route for the VIP,
after an optional propagation delay. No VIP route in the table, or a route to an ENI whose
source/destination check is on, gives a *blackhole* route: packets are dropped silently as in a
VPC, so a client's connect times out (it does not get a fast "unreachable").

Namespace names are `mvip<pid>x<n>{r,c,a,b}` (the veths live only inside them); `close()`
removes them (also on failure and on KeyboardInterrupt, through the context manager and an
atexit hook), and the next run sweeps namespaces left by a run that was killed.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import netns
from .fakeaws import Call, FakeAws
from .imds import Identity, ImdsEmulator
from .world import World, gateway_of, prefixlen

REPO = Path(__file__).resolve().parent.parent
AWS_ENDPOINT_IP = "198.18.0.10"  # RFC 2544 test range: only ever inside our namespaces
AWS_ENDPOINT_PORT = 443
IMDS_IP = "169.254.169.254"
SERVICE_PORT = 1972
ROUTER_IFACE = {"memberA": "to-a", "memberB": "to-b"}
CLIENT_IFACE = "to-c"
IRIS_FACTS = json.dumps({"mirror_name": "SIMMIRROR", "role": "primary"})
BRIDGE = (  # what IRIS's MirrorVip.Hooks runs: bridge.<command>(settings, iris, **options)
    "import json, sys\n"
    "from mirror_vip import bridge\n"
    "run = getattr(bridge, sys.argv[1])\n"
    "sys.stdout.write(run(sys.argv[2], sys.argv[3], **json.loads(sys.argv[4])))\n"
)


@dataclass
class RouteSwitch:
    """The router's VIP route changed: when (`ip route replace` was issued), to which member
    (None: blackhole), and which call in the fake AWS's record caused it."""

    at: float
    member: Optional[str]
    call_seq: Optional[int]


class MemberService:
    """Stands in for IRIS's superserver on VIP:1972: answers each connection with its name."""

    def __init__(self, name: str, sock: socket.socket) -> None:
        self.name = name
        self._sock = sock
        self._stop = threading.Event()
        self.answered = 0
        self._thread = threading.Thread(target=self._serve, name=f"svc-{name}", daemon=True)

    def start(self) -> MemberService:
        self._sock.setblocking(False)
        self._thread.start()
        return self

    def _serve(self) -> None:
        reply = (self.name + "\n").encode()
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, OSError):
                continue
            try:
                conn.setblocking(True)
                conn.sendall(reply)
                self.answered += 1
            except OSError:
                pass
            finally:
                conn.close()

    @property
    def running(self) -> bool:
        return not self._stop.is_set()

    def stop(self) -> None:
        """Close the listener: from now on a connection to this member is refused (RST)."""
        self._stop.set()
        self._sock.close()
        self._thread.join(2.0)


class Fabric:
    """Build with `with Fabric(aws, world) as fab:`; everything is torn down on exit."""

    def __init__(
        self,
        aws: FakeAws,
        world: World,
        *,
        propagation_delay: float = 0.0,
    ) -> None:
        self.aws = aws
        self.world = world
        self.propagation_delay = propagation_delay
        self.prefix = ""
        self.ns: Dict[str, str] = {}
        self.imds: Dict[str, ImdsEmulator] = {}
        self.services: Dict[str, MemberService] = {}
        self.switches: List[RouteSwitch] = []
        self.endpoint = ""  # the fake AWS's URL inside the router namespace (set by start)
        self._queue: queue.Queue[Optional[Tuple[float, Optional[str], Optional[int]]]] = (
            queue.Queue()
        )
        self._router_thread: Optional[threading.Thread] = None
        self._sdc_on: set = set()  # ENIs with source/dest check still on: AWS drops VIP traffic
        self._lock = threading.Lock()
        self._closed = False
        self.workdir = ""

    # --- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> Fabric:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Fabric:
        netns.sweep_stale()
        self.prefix = netns.new_prefix()
        self.ns = {
            "router": self.prefix + "r",
            "client": self.prefix + "c",
            "memberA": self.prefix + "a",
            "memberB": self.prefix + "b",
        }
        atexit.register(self.close)
        self.workdir = tempfile.mkdtemp(prefix=self.prefix + "-")
        for name in self.ns.values():
            netns.add_netns(name)
        self._wire_router()
        for member in self.world.members.values():
            self._wire_member(member.name)
        self._wire_client()
        self._start_servers()
        self._router_thread = threading.Thread(target=self._follow, name="router", daemon=True)
        self._router_thread.start()
        self._read_source_dest_check()
        self.aws.on_write(self._on_write)
        self.sync_router()
        return self

    def sync_router(self) -> None:
        """Point the router where the client's table points now (after set-up that went
        straight to moto, bypassing the proxy and so the hook)."""
        current = self.aws.route_target(self.world.client_table, self.world.destination)
        self._queue.put((0.0, current, None))

    def close(self) -> None:
        """Stop everything and delete the namespaces: whatever fails on the way, the
        namespaces and the work directory go (they are what a leak would leave behind)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.aws.remove_hook(self._on_write)
            self._queue.put(None)
            for service in self.services.values():
                service.stop()
            for emulator in self.imds.values():
                emulator.stop()
            if self._router_thread is not None:
                self._router_thread.join(5.0)
        finally:
            for name in self.ns.values():
                netns.del_netns(name)
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            atexit.unregister(self.close)

    # --- wiring ----------------------------------------------------------------------------

    def _wire_router(self) -> None:
        router = self.ns["router"]
        netns.sysctl(router, "net.ipv4.ip_forward", "1")
        for key in ("net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"):
            netns.sysctl(router, key, "0")
        netns.ip("-n", router, "addr", "add", f"{AWS_ENDPOINT_IP}/32", "dev", "lo")
        netns.ip("-n", router, "route", "add", "blackhole", self.world.destination)

    def _wire_member(self, name: str) -> None:
        member = self.world.members[name]
        bits, gateway = prefixlen(member.subnet_cidr), member.gateway
        ns = self.ns[name]
        self._attach(ns, ROUTER_IFACE[name], member.private_ip, bits, gateway, mac=member.mac)
        netns.ip("-n", ns, "addr", "add", f"{self.world.vip}/32", "dev", "eth0", "label", "eth0:1")
        netns.ip("-n", ns, "addr", "add", f"{IMDS_IP}/32", "dev", "lo")

    def _wire_client(self) -> None:
        cidr = self.world.client_subnet_cidr
        self._attach(
            self.ns["client"], CLIENT_IFACE, self.world.client_ip, prefixlen(cidr), gateway_of(cidr)
        )

    def _attach(
        self, ns: str, iface: str, address: str, bits: int, gateway: str, mac: Optional[str] = None
    ) -> None:
        """A host's eth0, wired to the router's IFACE: its subnet's gateway, its default route."""
        router = self.ns["router"]
        netns.veth(ns, "eth0", router, iface)
        if mac:
            netns.ip("-n", ns, "link", "set", "eth0", "address", mac)
        netns.ip("-n", ns, "addr", "add", f"{address}/{bits}", "dev", "eth0")
        netns.ip("-n", router, "addr", "add", f"{gateway}/{bits}", "dev", iface)
        netns.ip("-n", ns, "link", "set", "eth0", "up")
        netns.ip("-n", router, "link", "set", iface, "up")
        netns.ip("-n", ns, "route", "add", "default", "via", gateway)

    def _start_servers(self) -> None:
        sock = netns.in_netns(
            self.ns["router"], lambda: _listener(AWS_ENDPOINT_IP, AWS_ENDPOINT_PORT)
        )
        self.endpoint = self.aws.listen(sock)
        for name, member in self.world.members.items():
            identity = Identity(
                instance_id=member.instance_id,
                region=self.world.region,
                availability_zone=member.availability_zone,
                mac=member.mac,
                eni=member.eni,
                vpc_id=self.world.vpc_id,
                subnet_id=member.subnet_id,
                private_ip=member.private_ip,
                vpc_cidr=self.world.vpc_cidr,
                subnet_cidr=member.subnet_cidr,
            )
            self.imds[name] = ImdsEmulator(identity)
            self.start_imds(name)
            self.start_service(name)

    def start_imds(self, name: str) -> ImdsEmulator:
        """(Re)start NAME's IMDS emulator at 169.254.169.254:80 (after `stop_imds`)."""
        emulator = self.imds[name]
        if emulator.running:
            return emulator
        emulator.restart(netns.in_netns(self.ns[name], lambda: _listener(IMDS_IP, 80)))
        return emulator

    def stop_imds(self, name: str) -> None:
        """Nothing listens at 169.254.169.254:80 on NAME any more: connections are refused."""
        self.imds[name].stop()

    def start_service(self, name: str) -> MemberService:
        """(Re)start NAME's stand-in superserver on VIP:1972."""
        old = self.services.get(name)
        if old is not None and old.running:
            return old
        vip = self.world.vip
        sock = netns.in_netns(self.ns[name], lambda: _listener(vip, SERVICE_PORT))
        self.services[name] = MemberService(name, sock).start()
        return self.services[name]

    def stop_service(self, name: str) -> None:
        self.services[name].stop()

    def caller_names(self) -> Dict[str, str]:
        """{access key id: member name}: who signed a call in the fake AWS's record."""
        return {imds.identity.access_key_id: name for name, imds in self.imds.items()}

    # --- the router follows the client's route table ----------------------------------------

    def _read_source_dest_check(self) -> None:
        enis = [m.eni for m in self.world.members.values()]
        found = self.aws.ec2.describe_network_interfaces(NetworkInterfaceIds=enis)
        self._sdc_on = {
            e["NetworkInterfaceId"]
            for e in found["NetworkInterfaces"]
            if e.get("SourceDestCheck", True)
        }

    def _on_write(self, call: Call) -> None:
        if call.table != self.world.client_table or call.destination != self.world.destination:
            return
        target = None if call.action == "DeleteRoute" else call.target
        self._queue.put((time.monotonic() + self.propagation_delay, target, call.seq))

    def _follow(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            due, target, seq = item
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(min(wait, 60.0))
            member = self.world.member_by_target(target)
            name = member.name if member and member.eni not in self._sdc_on else None
            issued = time.monotonic()  # the kernel route changes while `ip` runs, ~2 ms from now
            self._set_router_route(name)
            self.switches.append(RouteSwitch(issued, name, seq))

    def _set_router_route(self, member: Optional[str]) -> None:
        dest = self.world.destination
        router = self.ns["router"]
        if member is None:
            netns.ip("-n", router, "route", "replace", "blackhole", dest, check=False)
            return
        via = self.world.members[member].private_ip
        iface = ROUTER_IFACE[member]
        netns.ip("-n", router, "route", "replace", dest, "via", via, "dev", iface, check=False)

    def router_target(self) -> Optional[str]:
        """The member the router's kernel route for the VIP points at now (None: blackhole)."""
        proc = netns.ip("-n", self.ns["router"], "-4", "route", "show", self.world.destination)
        text = proc.stdout.strip()
        for name, member in self.world.members.items():
            if f"via {member.private_ip} " in text + " ":
                return name
        return None

    def wait_router(self, member: Optional[str], timeout: float = 10.0) -> bool:
        return wait_for(lambda: self.router_target() == member, timeout)

    # --- running things inside a namespace ----------------------------------------------------

    def member_env(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """The environment of a process on a member, as IRIS's would be: no AWS keys, no
        ~/.aws; only the endpoint and the CA that signed its certificate are test settings
        (as for a user behind a corporate CA)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": "/nonexistent",
            "PYTHONPATH": os.pathsep.join([str(REPO / "python"), str(REPO)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            **self.aws.env(self.endpoint),
            "AWS_CONFIG_FILE": "/nonexistent/aws-config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        }
        env.update(extra or {})
        return env

    def argv(self, where: str, argv: Sequence[str]) -> List[str]:
        return netns.exec_argv(self.ns[where], argv)

    def popen(self, where: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:  # type: ignore[type-arg]
        kwargs.setdefault("env", self.member_env())
        return subprocess.Popen(self.argv(where, argv), **kwargs)

    def run(
        self, where: str, argv: Sequence[str], timeout: float = 60.0, **kwargs: Any
    ) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        kwargs.setdefault("env", self.member_env())
        return subprocess.run(
            self.argv(where, argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def python(self, where: str, *args: str, timeout: float = 60.0, **kwargs: Any) -> Any:
        return self.run(where, [sys.executable, *args], timeout=timeout, **kwargs)

    def settings(self, member: str, **extra: Any) -> Dict[str, Any]:
        """MEMBER's mirror-vip settings as IRIS's MirrorVip.Config would hold them: the stack's
        (vip, route_table_tag) and a route-table cache file of its own."""
        return {**self.world.settings, "cache_file": self.cache_file(member), **extra}

    def cache_file(self, member: str) -> str:
        return str(Path(self.workdir) / f"{member}-route-tables.json")

    def forget_caches(self) -> None:
        for member in self.world.members:
            Path(self.cache_file(member)).unlink(missing_ok=True)

    def bridge_argv(
        self,
        member: str,
        command: str = "claim",
        settings: Optional[Dict[str, Any]] = None,
        iris: str = IRIS_FACTS,
        **options: Any,
    ) -> List[str]:
        """The product's bridge entry point as IRIS calls it (claim, status, release, doctor);
        OPTIONS are its keyword arguments (use_cache=True is the failover path)."""
        chosen = self.settings(member) if settings is None else settings
        return [
            sys.executable,
            "-c",
            BRIDGE,
            command,
            json.dumps(chosen),
            iris,
            json.dumps(options),
        ]

    def bridge(
        self,
        member: str,
        command: str = "claim",
        settings: Optional[Dict[str, Any]] = None,
        iris: str = IRIS_FACTS,
        timeout: float = 90.0,
        **options: Any,
    ) -> Dict[str, Any]:
        """Run the bridge on MEMBER in its own process; its report (the JSON it returned).
        A process that died without a report gives {"ok": False, "crash": <stderr tail>}."""
        argv = self.bridge_argv(member, command, settings, iris, **options)
        done = self.run(member, argv, timeout=timeout)
        return parse_report(done.stdout, done.stderr)


def parse_report(stdout: str, stderr: str = "") -> Dict[str, Any]:
    """The JSON object printed (whole, or its last line), or a crash record with stderr's tail."""
    try:
        whole = json.loads(stdout or "")
        if isinstance(whole, dict):
            return whole
    except json.JSONDecodeError:
        pass
    for line in reversed((stdout or "").strip().splitlines()):
        try:
            found = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(found, dict):
            return found
    return {"ok": False, "crash": (stderr or "").strip().splitlines()[-5:]}


def _listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll CONDITION until true or TIMEOUT seconds pass (bounded: at most timeout/interval+1)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)

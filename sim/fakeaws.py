"""Fake AWS: moto's server behind a fidelity-and-fault proxy of ours, served over HTTPS.

    client (boto3, the product) --HTTPS--> proxy --HTTP--> moto server (loopback)

This module is the test's handle (life cycle, faults, hooks, the record, inspection); how the
proxy answers is sim/answering.py, its HTTP(S) front sim/proxy.py. The proxy
- serves TLS 1.3 (Python's defaults: session tickets after the handshake) or TLS 1.2, with a
  certificate from this process's test CA (sim/tls.py); a client trusts it through
  AWS_CA_BUNDLE, as a user behind a corporate CA does: `env()` is what a product process needs;
- makes moto answer as AWS does where it does not (sim/fidelity.py): DryRun, CreateRoute onto
  an existing route, routes to deleted interfaces;
- injects faults per action (sim/faults.py), by script (`times`, `skip`) or by probability
  (seeded RNG): latency, RequestLimitExceeded (503), InternalError (500), a dropped connection
  before or after the change is applied, no answer at all (nothing applied), a response held
  past the client's read timeout (the change *is* applied), an answer dribbled a byte at a
  time (the change *is* applied), UnauthorizedOperation for one route table; and lets an
  interceptor (`intercept`) refuse a call as AWS would;
- records every call (action, parameters, caller, start / applied / end times, status, error
  code) and every connection (when opened, when its handshake was over, TLS version, handshakes,
  requests), so tests count round trips, writes and handshakes (sim/record.py);
- models the network round trip of connection set-up (off by default): with `round_trip_s`,
  a new connection waits one round trip for TCP, then one per TLS flight the client waits for
  (sim/tls.py): TLS 1.3 costs 2 round trips before the first request, TLS 1.2 three;
- calls `on_write` hooks the moment a route write has landed in moto, in the order moto applied
  the writes to each table (writes to one table are serialised, as AWS does), which is how the
  simulated router follows the route table.

Use:
    aws = FakeAws(region="eu-west-1").start()
    ec2 = aws.client()               # straight to moto: set-up and inspection, not recorded
    aws.add_fault(Fault("throttle", action="ReplaceRoute", times=2))
    os.environ.update(aws.env())     # the product: AWS_ENDPOINT_URL and AWS_CA_BUNDLE
    aws.calls("ReplaceRoute"); aws.route_target("rtb-...", "10.9.0.10/32"); aws.stop()
    aws.set_round_trip(0.05)         # connection set-up pays the network's round trips
"""

from __future__ import annotations

import http.client
import logging
import random
import socket
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import fidelity, proxy, record, tls
from .answering import (
    MOTO_TIMEOUT_S,
    Answering,
    CallHook,
    Interceptor,
    WriteHook,
)
from .faults import DRIBBLES, Fault, Refusal
from .record import ROUTE_WRITES, TARGET_KEYS, Call, CallSummary, Connection

__all__ = [
    "DRIBBLES",
    "ROUTE_WRITES",
    "Call",
    "CallSummary",
    "Connection",
    "FakeAws",
    "Fault",
    "Refusal",
]

POLL_S = 0.05  # how soon stop() is noticed
TLS_VERSIONS = ("1.2", "1.3")


class _Default:
    """The type of `_DEFAULT`: "not given", where None means something."""


_DEFAULT = _Default()


class FakeAws(Answering):
    """moto server + our proxy. `start()` returns self; `stop()` is safe to call twice.

    TLS_VERSION: "1.3" (default) or "1.2"; None serves plain HTTP."""

    def __init__(
        self,
        region: str = "eu-west-1",
        seed: int = 0,
        tls_version: Optional[str] = "1.3",
        round_trip_s: float = 0.0,
    ) -> None:
        if tls_version is not None and tls_version not in TLS_VERSIONS:
            raise ValueError(f"tls_version={tls_version!r}: one of {TLS_VERSIONS} or None")
        self.region = region
        self.tls_version = tls_version  # the first listener's; `listen` may choose another
        self.round_trip_s = round_trip_s  # set_round_trip
        self._connections: List[Connection] = []
        self._accepted = 0  # connections ever accepted: numbers them
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._table_locks: Dict[str, threading.Lock] = {}
        self._faults: List[Fault] = []
        self._calls: List[Call] = []
        self._write_hooks: List[WriteHook] = []
        self._before_hooks: List[CallHook] = []
        self._interceptors: List[Interceptor] = []
        self._servers: List[proxy.ProxyServer] = []
        self._stopping = threading.Event()
        self._release = threading.Event()  # set (and replaced) by clear_faults: ends every hold
        self._moto: Any = None
        self._moto_api: Optional[fidelity.MotoApi] = None
        self._direct: Any = None
        self.moto_endpoint = ""
        self.endpoint = ""

    # --- life cycle ------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeAws:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
        # moto before 5.0.? cannot say which port it bound (no get_host_and_port): choose one
        bound = hasattr(ThreadedMotoServer, "get_host_and_port")
        wanted = 0 if bound else _free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=wanted, verbose=False)
        self._moto.start()
        moto_host, moto_port = self._moto.get_host_and_port() if bound else ("127.0.0.1", wanted)
        self.moto_endpoint = f"http://{moto_host}:{moto_port}"
        self._moto_addr = (moto_host, int(moto_port))
        self._moto_api = fidelity.MotoApi(moto_host, int(moto_port))
        self.endpoint = self.listen(host=host, port=port)
        return self

    def listen(
        self,
        sock: Optional[socket.socket] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_version: Union[str, _Default, None] = _DEFAULT,
    ) -> str:
        """Serve the proxy on one more listening socket (e.g. one opened inside a namespace
        with `netns.in_netns`) or on HOST:PORT; return its endpoint URL (https:// with TLS,
        its certificate naming the address it listens on). TLS_VERSION: this listener's
        ("1.2", "1.3", None for plain HTTP), default the fake's."""
        version = self.tls_version if isinstance(tls_version, _Default) else tls_version
        if version is not None and version not in TLS_VERSIONS:
            raise ValueError(f"tls_version={version!r}: one of {TLS_VERSIONS} or None")
        server = proxy.ProxyServer((host, port), proxy.ProxyHandler, bind_and_activate=sock is None)
        if sock is not None:
            server.socket.close()
            server.socket = sock
            server.server_address = sock.getsockname()
        server.fake = self
        if version is not None:
            names = proxy.listening_names(server.socket)
            server.tls = tls.authority().server_context(version, names)
        thread = threading.Thread(
            target=server.serve_forever, args=(POLL_S,), name="fakeaws-proxy", daemon=True
        )
        thread.start()
        self._servers.append(server)
        addr, bound_port = server.server_address[:2]
        scheme = "http" if version is None else "https"
        return f"{scheme}://{addr}:{bound_port}"

    def stop(self) -> None:
        self._stopping.set()
        self._release.set()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def __enter__(self) -> FakeAws:
        return self if self._moto else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget moto's state (its public reset endpoint), the faults, the hooks and the
        record (between tests). moto's state is per process: every FakeAws of this process
        shares it, and this resets it for all of them."""
        conn = http.client.HTTPConnection(*self._moto_addr, timeout=MOTO_TIMEOUT_S)
        try:
            conn.request("POST", "/moto-api/reset")
            conn.getresponse().read()
        finally:
            conn.close()
        with self._lock:
            self._faults.clear()
            self._calls.clear()
            self._connections.clear()
            self._write_hooks.clear()
            self._before_hooks.clear()
            self._interceptors.clear()

    # --- what a client needs -------------------------------------------------------------------

    @property
    def ca_file(self) -> Optional[str]:
        """The CA bundle that makes a client trust the proxy's HTTPS listeners."""
        return tls.authority().ca_file

    def env(self, endpoint: Optional[str] = None) -> Dict[str, str]:
        """The environment a product process needs to use this fake AWS (through ENDPOINT, one
        of `listen`'s URLs; default the first): AWS_ENDPOINT_URL and, with TLS, AWS_CA_BUNDLE."""
        chosen = endpoint or self.endpoint
        found = {"AWS_ENDPOINT_URL": chosen}
        if chosen.startswith("https://"):
            found["AWS_CA_BUNDLE"] = self.ca_file
        return found

    def client(
        self,
        service: str = "ec2",
        via_proxy: bool = False,
        endpoint: Optional[str] = None,
        **config: Any,
    ) -> Any:
        """A boto3 client with dummy credentials: through the proxy (at ENDPOINT, default the
        first) with one attempt per call (a test sees every fault as it is), trusting the test
        CA; or straight to moto (not recorded, no faults) with retries (moto's server may close
        an idle kept-alive connection as it is reused)."""
        import boto3
        from botocore.config import Config

        attempts = 1 if via_proxy else 4
        url = (endpoint or self.endpoint) if via_proxy else self.moto_endpoint
        return boto3.session.Session().client(
            service,
            region_name=self.region,
            endpoint_url=url,
            verify=self.ca_file if url.startswith("https://") else None,
            aws_access_key_id="AKIDSIMSETUP00000000",
            aws_secret_access_key="sim-secret",
            config=Config(retries={"total_max_attempts": attempts, "mode": "standard"}, **config),
        )

    # --- faults and hooks --------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def set_latency(self, action: str, seconds: float, jitter: float = 0.0) -> Fault:
        """Every call of ACTION ("*": any) waits SECONDS (+ up to JITTER) before moto sees it."""
        with self._lock:
            self._faults = [
                f for f in self._faults if not (f.kind == "latency" and f.action == action)
            ]
        return self.add_fault(Fault("latency", action=action, seconds=seconds, jitter=jitter))

    def deny(self, action: str = "*", table: Optional[str] = None) -> Fault:
        """UnauthorizedOperation for ACTION (on TABLE only, when given), dry runs included."""
        return self.add_fault(Fault("deny", action=action, table=table))

    def set_round_trip(self, seconds: float) -> None:
        """Model the network under connection set-up: every connection accepted from now on
        waits SECONDS (at most MAX_HOLD_S) for TCP, and as long again before each TLS flight
        the client waits for (sim/tls.py). Requests on an open connection do not wait."""
        self.round_trip_s = max(0.0, float(seconds))

    def clear_faults(self) -> None:
        """Remove every fault, and end every hold still running: a call held by `latency` or
        `hang` is then dropped unforwarded, so it cannot land in a later test."""
        with self._lock:
            self._faults.clear()
            released, self._release = self._release, threading.Event()
        released.set()

    def on_write(self, hook: WriteHook) -> None:
        """HOOK(call) runs when a route write has landed, in the order moto applied them per table.
        Keep it short (hand work to a thread): it runs inside the table's write lock."""
        with self._lock:
            self._write_hooks.append(hook)

    def before_forward(self, hook: CallHook) -> None:
        """HOOK(call) runs just before a call goes to moto (e.g. to delete a table mid-claim)."""
        with self._lock:
            self._before_hooks.append(hook)

    def intercept(self, hook: Interceptor) -> None:
        """HOOK(call) runs first for every call (before faults, fidelity and forwarding); a
        Refusal it returns is the answer, and the call goes no further."""
        with self._lock:
            self._interceptors.append(hook)

    def remove_hook(self, hook: Callable[[Call], Any]) -> None:
        """Undo `on_write`, `before_forward` or `intercept` for HOOK (no error when absent)."""
        with self._lock:
            for hooks in (self._write_hooks, self._before_hooks, self._interceptors):
                while hook in hooks:
                    hooks.remove(hook)  # type: ignore[arg-type]

    # --- the record --------------------------------------------------------------------------

    def calls(self, action: Optional[str] = None, since: float = 0.0) -> List[Call]:
        with self._lock:
            return [
                c
                for c in self._calls
                if (action is None or c.action == action) and c.start >= since
            ]

    def writes(self, since: float = 0.0) -> List[Call]:
        """Route writes (dry runs excluded), in arrival order."""
        return [c for c in self.calls(since=since) if c.is_write]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._connections.clear()

    def connections(self, since: float = 0.0) -> List[Connection]:
        """Client connections accepted (at or after SINCE), in the order they were opened."""
        with self._lock:
            return [c for c in self._connections if c.opened >= since]

    def route_history(
        self, table: str, destination: str, since: float = 0.0
    ) -> List[Tuple[float, Optional[str]]]:
        """(time applied, target or None for deleted) for each write that landed on TABLE's route
        to DESTINATION, in the order moto applied them."""
        return record.route_history(self.writes(since), table, destination)

    def no_route_windows(
        self, destination: str, before: Dict[str, Optional[str]], since: float = 0.0
    ) -> Dict[str, List[Tuple[float, Optional[float]]]]:
        """For each table that had a route to DESTINATION (per BEFORE: table -> target), the
        intervals (from, to) during which the route was absent (record.no_route_windows)."""
        return record.no_route_windows(self.writes(since), destination, before)

    # --- inspection, straight from moto --------------------------------------------------------

    @property
    def ec2(self) -> Any:
        """One shared EC2 client straight to moto (boto3 clients are thread-safe; making one
        costs tens of milliseconds, too much inside the proxy's write path)."""
        with self._lock:
            if self._direct is None:
                self._direct = self.client()
            return self._direct

    def route_tables(self, vpc_id: Optional[str] = None) -> List[Dict[str, Any]]:
        filters = [{"Name": "vpc-id", "Values": [vpc_id]}] if vpc_id else []
        tables: List[Dict[str, Any]] = self.ec2.describe_route_tables(Filters=filters)[
            "RouteTables"
        ]
        return tables

    def routes_to(self, destination: str, vpc_id: Optional[str] = None) -> Dict[str, Optional[str]]:
        """{table id: target of its route to DESTINATION, or None} for every table (in VPC_ID)."""
        result: Dict[str, Optional[str]] = {}
        for table in self.route_tables(vpc_id):
            result[table["RouteTableId"]] = _route_target(table, destination)
        return result

    def route_target(self, table: str, destination: str) -> Optional[str]:
        found = self.ec2.describe_route_tables(RouteTableIds=[table])["RouteTables"]
        return _route_target(found[0], destination) if found else None


def _route_target(table: Dict[str, Any], destination: str) -> Optional[str]:
    for route in table.get("Routes", []):
        if route.get("DestinationCidrBlock") == destination:
            for key in TARGET_KEYS:
                if route.get(key):
                    return str(route[key])
            return "?"
    return None


def _free_port() -> int:
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

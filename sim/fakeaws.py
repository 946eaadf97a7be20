"""Fake AWS: moto's server behind a fidelity-and-fault proxy of ours, served over HTTPS.

    client (boto3, the product) --HTTPS--> proxy (this module) --HTTP--> moto server (loopback)

The proxy
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
import re
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import parse_qs

from . import fidelity, proxy, tls
from .faults import DRIBBLES, Fault, Refusal, throttled, unauthorized
from .record import ROUTE_WRITES, TARGET_KEYS, Call, CallSummary, Connection

__all__ = ["ROUTE_WRITES", "Call", "CallSummary", "Connection", "FakeAws", "Fault", "Refusal"]

ACCOUNT_ID = "123456789012"
MOTO_TIMEOUT_S = 30.0
POLL_S = 0.05  # how soon stop() is noticed
MAX_HOLD_S = 120.0  # no fault holds a response longer than this, whatever it asks for
TLS_VERSIONS = ("1.2", "1.3")

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")

WriteHook = Callable[[Call], None]
CallHook = Callable[[Call], None]
Interceptor = Callable[[Call], Optional[Refusal]]


class _Default:
    """The type of `_DEFAULT`: "not given", where None means something."""


_DEFAULT = _Default()


class FakeAws:
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
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        moto_host, moto_port = self._moto.get_host_and_port()
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
        landed = [
            c
            for c in self.writes(since)
            if c.landed and c.table == table and c.destination == destination
        ]
        landed.sort(key=lambda c: c.applied or 0.0)
        return [(c.applied or 0.0, None if c.action == "DeleteRoute" else c.target) for c in landed]

    def no_route_windows(
        self, destination: str, before: Dict[str, Optional[str]], since: float = 0.0
    ) -> Dict[str, List[Tuple[float, Optional[float]]]]:
        """For each table that had a route to DESTINATION (per BEFORE: table -> target), the
        intervals (from, to) during which the route was absent; `to` is None when it never came
        back. Reconstructed from the record, so it sees a window however short it was."""
        windows: Dict[str, List[Tuple[float, Optional[float]]]] = {}
        for table, target in before.items():
            if target is None:
                continue
            gone_since: Optional[float] = None
            spans: List[Tuple[float, Optional[float]]] = []
            for at, new_target in self.route_history(table, destination, since):
                if new_target is None and gone_since is None:
                    gone_since = at
                elif new_target is not None and gone_since is not None:
                    spans.append((gone_since, at))
                    gone_since = None
            if gone_since is not None:
                spans.append((gone_since, None))
            windows[table] = spans
        return windows

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

    # --- the proxy's work (called by its handler) -----------------------------------------------

    def accept(self, handler: proxy.ProxyHandler, raw: socket.socket) -> Any:
        """A new connection: record it, hold it for the modelled round trips, run TLS; return
        what the handler reads and writes (the TLS stream, or RAW for plain HTTP)."""
        conn = Connection(
            seq=0,
            opened=time.monotonic(),
            peer=handler.client_address[0] if handler.client_address else None,
        )
        with self._lock:
            self._accepted += 1
            conn.seq = self._accepted
            self._connections.append(conn)
        handler.connection_seq, handler.connection_record = conn.seq, conn
        round_trip = min(self.round_trip_s, MAX_HOLD_S)

        def hold() -> bool:
            return round_trip <= 0 or not self._stopping.wait(round_trip)

        if not hold():  # TCP's round trip: the client's first bytes arrive one round trip late
            raise ConnectionAbortedError("the fake AWS is stopping")
        context = handler.server.tls
        if context is None:
            conn.ready = time.monotonic()
            return raw
        try:
            stream, seen = tls.accept(raw, context, hold)
        except OSError as exc:
            conn.error = str(exc) or type(exc).__name__
            raise
        conn.tls, conn.handshakes = seen.version, 1
        conn.resumed, conn.flights_held = seen.resumed, seen.flights_held
        conn.ready = time.monotonic()
        return stream

    def _record(self, call: Call, conn: Optional[Connection]) -> None:
        with self._lock:
            call.seq = len(self._calls) + 1
            self._calls.append(call)
            if conn is not None:
                conn.requests += 1

    def _pick_faults(self, call: Call) -> Tuple[float, Optional[Fault]]:
        """(latency to add, the one failure fault to apply or None)."""
        delay = 0.0
        failure: Optional[Fault] = None
        with self._lock:
            for fault in self._faults:
                if fault.exhausted() or not fault.matches(call):
                    continue
                if fault.kind != "latency" and failure is not None:
                    continue
                fault.matched += 1
                if fault.matched <= fault.skip:
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                fault.fired += 1
                if fault.kind == "latency":
                    delay += fault.seconds + (
                        self._rng.uniform(0, fault.jitter) if fault.jitter else 0
                    )
                else:
                    failure = fault
        return delay, failure

    def _table_lock(self, table: Optional[str]) -> Optional[threading.Lock]:
        if table is None:
            return None
        with self._lock:
            return self._table_locks.setdefault(table, threading.Lock())

    def _hold(self, seconds: float) -> bool:
        """Wait SECONDS (at most MAX_HOLD_S); False when clear_faults or stop ended it early."""
        with self._lock:
            release = self._release
        return not release.wait(min(max(seconds, 0.0), MAX_HOLD_S))

    def _forward(
        self, method: str, path: str, headers: Dict[str, str], body: bytes
    ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self._moto_addr, timeout=MOTO_TIMEOUT_S)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def handle(self, handler: proxy.ProxyHandler, method: str, body: bytes) -> None:
        """Answer one request: interceptors, faults, fidelity fixes, forwarding, hooks, record."""
        params = _form(body)
        action = params.get("Action") or handler.headers.get("X-Amz-Target", "?").split(".")[-1]
        caller, region = _signer(handler.headers.get("Authorization", ""))
        call = Call(
            seq=0,
            action=action,
            params=params,
            start=time.monotonic(),
            caller=caller,
            region=region,
            peer=handler.client_address[0] if handler.client_address else None,
            connection=handler.connection_seq,
        )
        self._record(call, handler.connection_record)
        try:
            self._answer(handler, call, method, body)
        finally:
            if not call.end:  # no answer sent (dropped, released): the end is now
                call.end = time.monotonic()

    def _answer(self, handler: proxy.ProxyHandler, call: Call, method: str, body: bytes) -> None:
        for interceptor in list(self._interceptors):
            refusal = interceptor(call)
            if refusal is not None:
                return proxy.send_refusal(handler, call, refusal)
        delay, fault = self._pick_faults(call)
        if delay:
            call.fault = "latency"
            if not self._hold(delay):
                handler.close_connection = True  # released: never forwarded
                return None
        kind = fault.kind if fault else None
        if fault:
            call.fault = kind
        if kind == "deny":
            return proxy.send_refusal(handler, call, unauthorized(_denied(self, call)))
        if call.dry_run:
            refusal = Refusal(
                412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set."
            )
            return proxy.send_refusal(handler, call, refusal)
        if kind == "throttle":
            return proxy.send_refusal(handler, call, throttled())
        if kind == "error500":
            refusal = Refusal(500, "InternalError", "An internal error has occurred.")
            return proxy.send_refusal(handler, call, refusal)
        if kind == "hang":
            self._hold(fault.seconds if fault else 0.0)
        if kind in ("drop", "hang"):
            handler.close_connection = True
            return None
        answer = self._forward_call(handler, call, method, body)
        if isinstance(answer, Refusal):
            return proxy.send_refusal(handler, call, answer)
        if kind == "drop_after":
            handler.close_connection = True
            return None
        if kind == "slow":
            self._hold(fault.seconds if fault else 0.0)
        if fault and kind in DRIBBLES:
            with self._lock:
                release = self._release
            return proxy.dribble(
                handler, call, answer, fault.seconds, kind == "dribble_head", release, MAX_HOLD_S
            )
        return proxy.send(handler, call, *answer)

    def _forward_call(
        self, handler: proxy.ProxyHandler, call: Call, method: str, body: bytes
    ) -> Any:
        """Moto's answer (status, headers, body), made faithful; or the Refusal AWS would give.
        A route write holds its table's lock from the check to the write hooks."""
        authorization = handler.headers.get("Authorization", "")
        lock = self._table_lock(call.table) if call.is_write else None
        if lock is None:
            answer = self._to_moto(handler, call, method, body)
        else:
            with lock:
                if call.action == "CreateRoute" and call.table and call.destination:
                    assert self._moto_api is not None
                    if fidelity.route_exists(
                        self._moto_api, call.table, call.destination, authorization
                    ):
                        return Refusal(
                            400,
                            "RouteAlreadyExists",
                            f"The route identified by {call.destination} already exists.",
                        )
                answer = self._to_moto(handler, call, method, body)
                if call.landed:
                    for hook in list(self._write_hooks):
                        hook(call)
        status, headers, payload = answer
        if call.action == "DescribeRouteTables" and status == 200 and self._moto_api is not None:
            payload = fidelity.mark_blackholes(self._moto_api, payload, authorization)
        return status, headers, payload

    def _to_moto(
        self, handler: proxy.ProxyHandler, call: Call, method: str, body: bytes
    ) -> Tuple[int, List[Tuple[str, str]], bytes]:
        for hook in list(self._before_hooks):
            hook(call)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
        status, resp_headers, payload = self._forward(method, handler.path, headers, body)
        call.applied = time.monotonic()
        if status != 200:
            found = _ERROR_CODE.search(payload)
            call.code = found.group(1).decode() if found else f"HTTP{status}"
        return status, resp_headers, payload


def _route_target(table: Dict[str, Any], destination: str) -> Optional[str]:
    for route in table.get("Routes", []):
        if route.get("DestinationCidrBlock") == destination:
            for key in TARGET_KEYS:
                if route.get(key):
                    return str(route[key])
            return "?"
    return None


def _form(body: bytes) -> Dict[str, str]:
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {k: v[0] for k, v in parsed.items()}


def _signer(authorization: str) -> Tuple[Optional[str], Optional[str]]:
    """(access key id, region) from a SigV4 Authorization header."""
    found = _CREDENTIAL.search(authorization)
    return (found.group(1), found.group(2)) if found else (None, None)


def _denied(fake: FakeAws, call: Call) -> str:
    resource = f"arn:aws:ec2:{fake.region}:{ACCOUNT_ID}:route-table/{call.table or '*'}"
    return (
        "You are not authorized to perform this operation. "
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/mirror-vip/{call.caller or '?'} "
        f"is not authorized to perform: ec2:{call.action} on resource: {resource} "
        "because no identity-based policy allows the action."
    )

"""Fake AWS: moto's server over real HTTP, behind a fidelity-and-fault proxy of ours.

    client (boto3, the product) --HTTP--> proxy (this module) --HTTP--> moto server (loopback)

The proxy
- makes moto answer as AWS does where it does not (see DESIGN.md, "Test doubles and their gaps"):
  `DryRun=true` answers `DryRunOperation` (HTTP 412), or `UnauthorizedOperation` (403) when a
  `deny` fault covers the call, and changes nothing; `CreateRoute` onto a destination that
  already has a route answers `RouteAlreadyExists` instead of silently overwriting it;
- injects faults per action, by script (`times`, `skip`) or by probability (seeded RNG):
  latency, RequestLimitExceeded (503), InternalError (500), a dropped connection before or after
  the change is applied, no answer at all (nothing applied), a response held past the client's
  read timeout (the change *is* applied), an answer dribbled a byte at a time (its body, or its
  headers too: every socket read gets data, so a per-read timeout never fires; the change *is*
  applied), UnauthorizedOperation for one route table;
- records every call (action, parameters, caller, start / applied / end times, status, error
  code) so tests count round trips and writes, and reconstruct each table's route history;
- models TLS connection set-up (off by default): with `handshake_s`, each new client connection
  waits that long before its first request is read, as a TLS handshake done in `connect()`
  would; a connection opened early (aws.open_connections) has paid it by the time it is used.
  Every connection is recorded (`connections()`);
- calls `on_write` hooks the moment a route write has landed in moto, in the order moto applied
  the writes to each table (writes to one table are serialised, as AWS does), which is how the
  simulated router follows the route table.

Use:
    aws = FakeAws(region="eu-west-1").start()
    ec2 = aws.client()               # straight to moto: set-up and inspection, not recorded
    aws.add_fault(Fault("throttle", action="ReplaceRoute", times=2))
    ... point the product at aws.endpoint (AWS_ENDPOINT_URL) ...
    aws.calls("ReplaceRoute"); aws.route_target("rtb-...", "10.9.0.10/32"); aws.stop()
    FakeAws(handshake_s=0.1)         # or aws.set_handshake(0.1): TLS set-up per new connection
"""

from __future__ import annotations

import http.client
import logging
import random
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

ROUTE_WRITES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")
ACCOUNT_ID = "123456789012"
FAULT_KINDS = (
    "latency",
    "throttle",
    "error500",
    "drop",
    "drop_after",
    "hang",
    "slow",
    "dribble",
    "dribble_head",
    "deny",
)
DRIBBLES = ("dribble", "dribble_head")
MOTO_TIMEOUT_S = 30.0
POLL_S = 0.05  # how soon stop() is noticed
MAX_HOLD_S = 120.0  # no fault holds a response longer than this, whatever it asks for

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")


@dataclass
class Call:
    """One request the proxy received. Times are time.monotonic() (comparable across processes)."""

    seq: int
    action: str
    params: Dict[str, str]
    start: float
    caller: Optional[str] = None  # the access key id the request was signed with
    region: Optional[str] = None  # the region it was signed for
    peer: Optional[str] = None  # the client's address
    end: float = 0.0  # when the answer was sent (or the connection dropped)
    applied: Optional[float] = None  # when moto answered: the change, if any, had landed
    status: int = 0  # HTTP status sent to the client; 0 when none was sent
    code: Optional[str] = None  # AWS error code sent (or that moto gave), None on success
    fault: Optional[str] = None  # the fault injected into this call, if any
    connection: Optional[int] = None  # which client connection carried it (its `seq`)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def dry_run(self) -> bool:
        return self.params.get("DryRun", "").lower() == "true"

    @property
    def table(self) -> Optional[str]:
        return self.params.get("RouteTableId")

    @property
    def destination(self) -> Optional[str]:
        return self.params.get("DestinationCidrBlock")

    @property
    def target(self) -> Optional[str]:
        for key in ("NetworkInterfaceId", "InstanceId", "GatewayId", "TransitGatewayId"):
            if self.params.get(key):
                return self.params[key]
        return None

    @property
    def is_write(self) -> bool:
        return self.action in ROUTE_WRITES and not self.dry_run

    @property
    def landed(self) -> bool:
        """The write changed the route table (moto applied it), whatever the client saw."""
        return self.is_write and self.applied is not None and self.code is None

    def describe(self) -> str:
        what = self.action
        if self.table:
            what += f" {self.table}"
        if self.target:
            what += f" -> {self.target}"
        if self.dry_run:
            what += " (dry run)"
        return what


@dataclass
class Connection:
    """One client connection the proxy accepted (time.monotonic(), like Call's times)."""

    seq: int  # 1, 2, ... in the order the proxy accepted them (Call.connection refers to it)
    opened: float  # accepted: the client's connect() (TCP) had completed
    ready: float = 0.0  # the modelled handshake was over: its requests could be read from here
    peer: Optional[str] = None


@dataclass
class Fault:
    """One injected fault. It fires on calls that match `action` ("*" for any), `table` and
    `caller`; it lets the first `skip` matches through, then fires on at most `times` matches
    (None: every one), each with `probability` (drawn from the proxy's seeded RNG).

    kinds: latency (wait `seconds`, then go on; combines with one other fault),
    throttle (503 RequestLimitExceeded), error500 (500 InternalError), drop (close the connection
    before forwarding: nothing changes), drop_after (forward, then close without an answer: the
    change lands), hang (hold `seconds`, then close: never forwarded, nothing changes; EC2 not
    answering), slow (forward, then hold the answer `seconds`: past the client's read timeout,
    the change lands), dribble (forward, then send the status line and headers at once and the
    body one byte every `seconds`: the change lands, and a client bounding each socket read
    waits for the whole answer), dribble_head (the same, the status line and headers dribbled
    too), deny (403 UnauthorizedOperation, for dry runs too). A dribble lasts at most MAX_HOLD_S
    and ends (the connection closed) at clear_faults or stop; `Call.end` is when it ended or
    the proxy found the client gone (a write failed), `Call.status` is 0 unless it all went out.
    """

    kind: str
    action: str = "*"
    table: Optional[str] = None
    caller: Optional[str] = None
    times: Optional[int] = None
    skip: int = 0
    probability: float = 1.0
    seconds: float = 0.0
    jitter: float = 0.0  # latency only: up to this many seconds more, uniformly
    matched: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {FAULT_KINDS}")

    def matches(self, call: Call) -> bool:
        if self.action not in ("*", call.action):
            return False
        if self.table is not None and call.table != self.table:
            return False
        return self.caller is None or call.caller == self.caller

    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times


WriteHook = Callable[[Call], None]
CallHook = Callable[[Call], None]


class FakeAws:
    """moto server + our proxy. `start()` returns self; `stop()` is safe to call twice."""

    def __init__(self, region: str = "eu-west-1", seed: int = 0, handshake_s: float = 0.0) -> None:
        self.region = region
        self.handshake_s = handshake_s  # modelled TLS set-up per new connection (set_handshake)
        self._connections: List[Connection] = []
        self._accepted = 0  # connections ever accepted: numbers them
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._table_locks: Dict[str, threading.Lock] = {}
        self._faults: List[Fault] = []
        self._calls: List[Call] = []
        self._write_hooks: List[WriteHook] = []
        self._before_hooks: List[CallHook] = []
        self._servers: List[ThreadingHTTPServer] = []
        self._stopping = threading.Event()
        self._release = threading.Event()  # set (and replaced) by clear_faults: ends every hold
        self._moto: Any = None
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
        self.endpoint = self.listen(host=host, port=port)
        return self

    def listen(
        self, sock: Optional[socket.socket] = None, host: str = "127.0.0.1", port: int = 0
    ) -> str:
        """Serve the proxy on one more listening socket (e.g. one opened inside a namespace
        with `netns.in_netns`) or on HOST:PORT; return its endpoint URL."""
        server = _ProxyServer((host, port), _ProxyHandler, bind_and_activate=sock is None)
        if sock is not None:
            server.socket.close()
            server.socket = sock
            server.server_address = sock.getsockname()
        server.fake = self
        thread = threading.Thread(
            target=server.serve_forever, args=(POLL_S,), name="fakeaws-proxy", daemon=True
        )
        thread.start()
        self._servers.append(server)
        addr, bound_port = server.server_address[:2]
        return f"http://{addr}:{bound_port}"

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
        """Forget moto's state, the faults, the hooks and the record (between tests)."""
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

    # --- clients -----------------------------------------------------------------------------

    def client(self, service: str = "ec2", via_proxy: bool = False, **config: Any) -> Any:
        """A boto3 client with dummy credentials: through the proxy with one attempt per call
        (a test sees every fault as it is), or straight to moto (not recorded, no faults) with
        retries (moto's server may close an idle kept-alive connection as it is reused)."""
        import boto3
        from botocore.config import Config

        attempts = 1 if via_proxy else 4
        return boto3.session.Session().client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint if via_proxy else self.moto_endpoint,
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

    def set_handshake(self, seconds: float) -> None:
        """Model TLS set-up: every connection opened from now on waits SECONDS (at most
        MAX_HOLD_S) before its first request is read; later requests on it do not wait."""
        self.handshake_s = max(0.0, float(seconds))

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

    def remove_hook(self, hook: Callable[[Call], None]) -> None:
        """Undo `on_write` or `before_forward` for HOOK (no error when it is not there)."""
        with self._lock:
            for hooks in (self._write_hooks, self._before_hooks):
                while hook in hooks:
                    hooks.remove(hook)

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

    # --- the proxy's work (called by the handler) -----------------------------------------------

    def handshake(self, handler: _ProxyHandler) -> None:
        """A new connection: record it, then hold it for the modelled TLS handshake."""
        conn = Connection(
            seq=0,
            opened=time.monotonic(),
            peer=handler.client_address[0] if handler.client_address else None,
        )
        with self._lock:
            self._accepted += 1
            conn.seq = self._accepted
            self._connections.append(conn)
        handler.connection_seq = conn.seq
        if self.handshake_s > 0:
            self._stopping.wait(min(self.handshake_s, MAX_HOLD_S))
        conn.ready = time.monotonic()

    def _record(self, call: Call) -> None:
        with self._lock:
            call.seq = len(self._calls) + 1
            self._calls.append(call)

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

    def _route_exists(self, call: Call) -> bool:
        """Whether CALL's table already has a route to CALL's destination, read straight from
        moto's in-process state: through its HTTP API this costs ~40 ms, which would slow every
        CreateRoute (the baseline's) and skew the comparison."""
        from moto.ec2.models import ec2_backends

        region = call.region or self.region
        table = ec2_backends[ACCOUNT_ID][region].route_tables.get(call.table or "")
        if table is None:
            return False  # moto answers InvalidRouteTableID.NotFound itself
        return any(
            getattr(route, "destination_cidr_block", None) == call.destination
            for route in table.routes
        )

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

    def handle(self, handler: _ProxyHandler, method: str, body: bytes) -> None:
        """Answer one request: faults, fidelity fixes, forwarding, hooks, record."""
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
        self._record(call)
        try:
            self._answer(handler, call, method, body)
        finally:
            if not call.end:  # no answer sent (dropped, released): the end is now
                call.end = time.monotonic()

    def _answer(self, handler: _ProxyHandler, call: Call, method: str, body: bytes) -> None:
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
            return self._error(handler, call, 403, "UnauthorizedOperation", _denied(self, call))
        if call.dry_run:
            return self._error(
                handler,
                call,
                412,
                "DryRunOperation",
                "Request would have succeeded, but DryRun flag is set.",
            )
        if kind == "throttle":
            return self._error(
                handler, call, 503, "RequestLimitExceeded", "Request limit exceeded."
            )
        if kind == "error500":
            return self._error(
                handler, call, 500, "InternalError", "An internal error has occurred."
            )
        if kind == "hang":
            self._hold(fault.seconds if fault else 0.0)
        if kind in ("drop", "hang"):
            handler.close_connection = True
            return None
        lock = self._table_lock(call.table) if call.is_write else None
        if lock is None:
            status, headers, payload = self._forward_call(handler, call, method, body)
        else:
            with lock:
                if call.action == "CreateRoute" and call.destination and self._route_exists(call):
                    return self._error(
                        handler,
                        call,
                        400,
                        "RouteAlreadyExists",
                        f"The route identified by {call.destination} already exists.",
                    )
                status, headers, payload = self._forward_call(handler, call, method, body)
                if call.landed:
                    for hook in list(self._write_hooks):
                        hook(call)
        if kind == "drop_after":
            handler.close_connection = True
            return None
        if kind == "slow":
            self._hold(fault.seconds if fault else 0.0)
        if fault and kind in DRIBBLES:
            return self._dribble(handler, call, status, headers, payload, fault)
        return self._send(handler, call, status, headers, payload)

    def _forward_call(
        self, handler: _ProxyHandler, call: Call, method: str, body: bytes
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

    def _error(self, handler: _ProxyHandler, call: Call, status: int, code: str, msg: str) -> None:
        call.code = code
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(msg)}</Message>"
            f"</Error></Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
        ).encode()
        self._send(handler, call, status, [("Content-Type", "text/xml;charset=UTF-8")], body)

    def _send(
        self,
        handler: _ProxyHandler,
        call: Call,
        status: int,
        headers: Iterable[Tuple[str, str]],
        body: bytes,
    ) -> None:
        skip = {"content-length", "connection", "transfer-encoding", "date", "server"}
        try:
            handler.send_response(status)
            for key, value in headers:
                if key.lower() not in skip:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            # Recorded before the body leaves: once the client has read the answer, the record
            # must already say so (a test reading it right after the call saw end == 0).
            call.status, call.end = status, time.monotonic()
            handler.wfile.write(body)
            handler.wfile.flush()
        except OSError:
            call.status = 0
            handler.close_connection = True  # the client gave up (e.g. its read timeout)

    def _dribble(
        self,
        handler: _ProxyHandler,
        call: Call,
        status: int,
        headers: Iterable[Tuple[str, str]],
        body: bytes,
        fault: Fault,
    ) -> None:
        """Send the answer a byte every `fault.seconds` (the head at once for `dribble`)."""
        head = _head(status, headers, len(body))
        at_once, trickle = (head, body) if fault.kind == "dribble" else (b"", head + body)
        with self._lock:
            release = self._release
        until = time.monotonic() + MAX_HOLD_S
        handler.close_connection = True  # whatever happens, this connection carries no more
        try:
            if at_once:
                handler.wfile.write(at_once)
            for i in range(len(trickle)):
                if release.wait(fault.seconds) or time.monotonic() > until:
                    return None  # released or held long enough: closed, the answer unfinished
                if i == len(trickle) - 1:  # recorded before the last byte leaves, as in _send
                    call.status, call.end = status, time.monotonic()
                handler.wfile.write(trickle[i : i + 1])
        except OSError:  # the client gave up and closed: `end` (set by handle) says when
            call.status, call.end = 0, 0.0
        return None


def _head(status: int, headers: Iterable[Tuple[str, str]], length: int) -> bytes:
    """An HTTP/1.1 status line and headers as `_send` would write them."""
    skip = {"content-length", "connection", "transfer-encoding", "date", "server"}
    lines = [f"HTTP/1.1 {status} {http.client.responses.get(status, '')}".rstrip()]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() not in skip]
    lines += [f"Content-Length: {length}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _route_target(table: Dict[str, Any], destination: str) -> Optional[str]:
    for route in table.get("Routes", []):
        if route.get("DestinationCidrBlock") == destination:
            for key in ("NetworkInterfaceId", "InstanceId", "GatewayId", "TransitGatewayId"):
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


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops the SYNs of 32 parallel writes (1 s stalls)
    fake: FakeAws


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # else headers and body meet delayed ACK: 40 ms stalls
    server: _ProxyServer
    connection_seq: Optional[int] = None

    def setup(self) -> None:
        """Per connection, before its first request is read: the modelled TLS handshake."""
        super().setup()
        self.server.fake.handshake(self)

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.fake.handle(self, method, body)

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def log_message(self, format: str, *args: Any) -> None:
        return None


@dataclass
class CallSummary:
    """Counts over a slice of the record, for reports and assertions."""

    round_trips: int = 0
    writes: int = 0
    by_action: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, calls: Iterable[Call]) -> CallSummary:
        summary = cls()
        for call in calls:
            summary.round_trips += 1
            summary.writes += 1 if call.is_write else 0
            summary.by_action[call.action] = summary.by_action.get(call.action, 0) + 1
        return summary

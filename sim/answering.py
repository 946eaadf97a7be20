"""How the fake AWS's proxy answers (sim/fakeaws.py is the test's handle on it): each new
connection is recorded and set up (the modelled round trips, TLS), each request recorded and
answered: interceptors, faults, AWS's answers where moto's differ (sim/fidelity.py), moto's
own answer, the write hooks."""

from __future__ import annotations

import http.client
import random
import re
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

from . import fidelity, proxy, tls
from .faults import DRIBBLES, Fault, Refusal, pick, throttled, unauthorized
from .record import Call, Connection

ACCOUNT_ID = "123456789012"
MOTO_TIMEOUT_S = 30.0
MAX_HOLD_S = 120.0  # no fault holds a response longer than this, whatever it asks for

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/[^/]+/([^/]+)/")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")

WriteHook = Callable[[Call], None]
CallHook = Callable[[Call], None]
Interceptor = Callable[[Call], Optional[Refusal]]


class Answering:
    """The proxy's work, mixed into FakeAws, which sets this state up and configures it."""

    region: str
    round_trip_s: float
    _lock: threading.Lock
    _rng: random.Random
    _faults: List[Fault]
    _calls: List[Call]
    _connections: List[Connection]
    _accepted: int
    _table_locks: Dict[str, threading.Lock]
    _write_hooks: List[WriteHook]
    _before_hooks: List[CallHook]
    _interceptors: List[Interceptor]
    _stopping: threading.Event
    _release: threading.Event
    _moto_addr: Tuple[str, int]
    _moto_api: Optional[fidelity.MotoApi]

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
        with self._lock:
            return pick(self._faults, call, self._rng)

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


def _denied(fake: Answering, call: Call) -> str:
    resource = f"arn:aws:ec2:{fake.region}:{ACCOUNT_ID}:route-table/{call.table or '*'}"
    return (
        "You are not authorized to perform this operation. "
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/mirror-vip/{call.caller or '?'} "
        f"is not authorized to perform: ec2:{call.action} on resource: {resource} "
        "because no identity-based policy allows the action."
    )

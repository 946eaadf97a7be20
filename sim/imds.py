"""An IMDSv2 emulator for one simulated EC2 instance.

As on an instance with `HttpTokens: required`: `PUT /latest/api/token` with header
`X-aws-ec2-metadata-token-ttl-seconds` (1-21600) returns a token; every GET must carry it in
`X-aws-ec2-metadata-token`, else 401 (IMDSv1 is off). A PUT carrying `X-Forwarded-For` is
refused (403), as AWS does. It serves the instance's identity (instance id, region, zone, MAC ->
ENI id, VPC and subnet) and the instance role's credentials in the shape botocore's credential
provider expects, so boto3 authenticates exactly as on EC2.

Faults, for the reliability tests: `expire_tokens()` (every token issued so far answers 401 from
now on: "the token expired"), `reject_next(n)` (the next n GETs answer 401 whatever the token),
`slow(seconds)` (every answer waits), `mode = "hang"` (accept, never answer), `mode = "reset"`
(accept, then reset the connection); `add_fault(kind, seconds, path)` for the requests under
one path only (e.g. the token, or the role's credentials): `slow`, `hang`, or `dribble` (the
status line and headers at once, then the body one byte every `seconds`); `answer_with(path, text)`
serves other text at a path (e.g. the HTML page a proxy would answer with); `heal()` ends every
fault; `stop()` leaves nothing listening (connection refused).
"""

from __future__ import annotations

import datetime
import json
import secrets
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple

MAX_TTL_S = 21600
POLL_S = 0.05  # how soon stop() is noticed
MAX_HOLD_S = 60.0
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"


@dataclass
class Identity:
    """Who the simulated instance is. Credentials default to keys that name the instance, so
    the fake AWS's record shows which member signed each call."""

    instance_id: str
    region: str
    availability_zone: str
    mac: str
    eni: str
    vpc_id: str
    subnet_id: str
    private_ip: str
    vpc_cidr: str = ""
    subnet_cidr: str = ""
    role: str = "mirror-vip-instance-role"
    account_id: str = "123456789012"
    access_key_id: str = ""
    secret_access_key: str = "sim-secret-access-key"
    session_token: str = "sim-session-token"
    instance_type: str = "m6i.large"

    def __post_init__(self) -> None:
        if not self.access_key_id:
            self.access_key_id = access_key_for(self.instance_id)


def access_key_for(instance_id: str) -> str:
    """The access key id the emulator hands an instance: ASIA + its id's hex, 20 characters."""
    tail = instance_id.replace("i-", "").upper()
    return ("ASIA" + tail + "0" * 16)[:20]


FAULT_KINDS = ("slow", "hang", "dribble")


@dataclass
class ImdsCall:
    at: float  # when the request arrived (time.monotonic())
    method: str
    path: str
    status: int
    end: float = 0.0  # as its last byte left, or when it was found unwanted or dropped


@dataclass
class ImdsFault:
    """A fault on the requests whose path under /latest/ starts with `path` ("" for every one)."""

    kind: str
    seconds: float = 0.0
    path: str = ""

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown IMDS fault {self.kind!r}; one of {FAULT_KINDS}")


@dataclass
class _State:
    tokens: Dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    reject: int = 0
    delay: float = 0.0
    mode: str = "normal"  # normal | hang | reset
    faults: List[ImdsFault] = field(default_factory=list)
    answers: Dict[str, str] = field(default_factory=dict)  # path under /latest/ -> text
    release: threading.Event = field(default_factory=threading.Event)  # set by heal()


class ImdsEmulator:
    """Serve one Identity over HTTP. `start()` takes a listening socket (e.g. one bound at
    169.254.169.254:80 inside a member's namespace) or binds HOST:PORT; returns the base URL."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.calls: List[ImdsCall] = []
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[_ImdsServer] = None
        self.endpoint = ""

    def start(
        self, sock: Optional[socket.socket] = None, host: str = "127.0.0.1", port: int = 0
    ) -> str:
        server = _ImdsServer((host, port), _ImdsHandler, bind_and_activate=sock is None)
        if sock is not None:
            server.socket.close()
            server.socket = sock
            server.server_address = sock.getsockname()
        server.imds = self
        self._server = server
        threading.Thread(
            target=server.serve_forever, args=(POLL_S,), name="imds", daemon=True
        ).start()
        addr, bound = server.server_address[:2]
        self.endpoint = f"http://{addr}:{bound}"
        return self.endpoint

    @property
    def running(self) -> bool:
        return self._server is not None

    def restart(self, sock: Optional[socket.socket] = None) -> str:
        """Serve again after `stop()`, keeping the identity, the tokens and the record."""
        self._stopping = threading.Event()
        with self._lock:
            self._state.release = threading.Event()
        return self.start(sock)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            self._state.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- faults ----------------------------------------------------------------------------

    def expire_tokens(self) -> None:
        with self._lock:
            self._state.tokens = {t: 0.0 for t in self._state.tokens}

    def reject_next(self, count: int = 1) -> None:
        with self._lock:
            self._state.reject = count

    def slow(self, seconds: float) -> None:
        with self._lock:
            self._state.delay = seconds

    @property
    def mode(self) -> str:
        return self._state.mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in ("normal", "hang", "reset"):
            raise ValueError(f"unknown IMDS mode {value!r}")
        with self._lock:
            self._state.mode = value

    def add_fault(self, kind: str, seconds: float = 0.0, path: str = "") -> ImdsFault:
        """KIND (slow, hang, dribble) on the requests under PATH (relative to /latest/)."""
        fault = ImdsFault(kind, seconds, path.strip("/"))
        with self._lock:
            self._state.faults.append(fault)
        return fault

    def answer_with(self, path: str, text: str) -> None:
        """Serve TEXT at PATH (relative to /latest/) instead of the instance's value."""
        with self._lock:
            self._state.answers[path.strip("/")] = text

    def heal(self) -> None:
        """End every fault (a request held by one is closed unanswered) and every answer_with()."""
        with self._lock:
            self._state.reject = 0
            self._state.delay = 0.0
            self._state.mode = "normal"
            self._state.faults.clear()
            self._state.answers.clear()
            released, self._state.release = self._state.release, threading.Event()
        released.set()

    def fault_for(self, path: str) -> Optional[ImdsFault]:
        """The first fault whose path covers PATH (a request path, query and all)."""
        rel = path.split("?", 1)[0]
        rel = rel[len("/latest/") :] if rel.startswith("/latest/") else rel.lstrip("/")
        with self._lock:
            return next((f for f in self._state.faults if rel.startswith(f.path)), None)

    def hold(self, seconds: float) -> bool:
        """Wait SECONDS (at most MAX_HOLD_S); False when heal() or stop() ended the wait."""
        with self._lock:
            release = self._state.release
        if release.wait(min(max(seconds, 0.0), MAX_HOLD_S)):
            return False
        return not self._stopping.is_set()

    def gets(self) -> List[ImdsCall]:
        with self._lock:
            return [c for c in self.calls if c.method == "GET"]

    # --- content ---------------------------------------------------------------------------

    def credentials(self) -> Dict[str, str]:
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return {
            "Code": "Success",
            "LastUpdated": now.strftime(stamp),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.identity.access_key_id,
            "SecretAccessKey": self.identity.secret_access_key,
            "Token": self.identity.session_token,
            "Expiration": (now + datetime.timedelta(hours=6)).strftime(stamp),
        }

    def tree(self) -> Dict[str, str]:
        """Every leaf path under /latest/ and its text."""
        who = self.identity
        mac_dir = f"meta-data/network/interfaces/macs/{who.mac}/"
        doc = {
            "accountId": who.account_id,
            "architecture": "x86_64",
            "availabilityZone": who.availability_zone,
            "imageId": "ami-00000000000000000",
            "instanceId": who.instance_id,
            "instanceType": who.instance_type,
            "privateIp": who.private_ip,
            "region": who.region,
            "version": "2017-09-30",
        }
        leaves = {
            "meta-data/instance-id": who.instance_id,
            "meta-data/instance-type": who.instance_type,
            "meta-data/local-ipv4": who.private_ip,
            "meta-data/mac": who.mac,
            "meta-data/placement/region": who.region,
            "meta-data/placement/availability-zone": who.availability_zone,
            mac_dir + "interface-id": who.eni,
            mac_dir + "device-number": "0",
            mac_dir + "mac": who.mac,
            mac_dir + "local-ipv4s": who.private_ip,
            mac_dir + "vpc-id": who.vpc_id,
            mac_dir + "subnet-id": who.subnet_id,
            mac_dir + "owner-id": who.account_id,
            "meta-data/iam/info": json.dumps(
                {
                    "Code": "Success",
                    "InstanceProfileArn": f"arn:aws:iam::{who.account_id}:instance-profile/"
                    + who.role,
                    "InstanceProfileId": "AIPASIMULATED0000000",
                }
            ),
            "meta-data/iam/security-credentials/" + who.role: "",  # filled per request
            "dynamic/instance-identity/document": json.dumps(doc, indent=2),
        }
        if who.vpc_cidr:
            leaves[mac_dir + "vpc-ipv4-cidr-block"] = who.vpc_cidr
            leaves[mac_dir + "vpc-ipv4-cidr-blocks"] = who.vpc_cidr
        if who.subnet_cidr:
            leaves[mac_dir + "subnet-ipv4-cidr-block"] = who.subnet_cidr
        return leaves

    def lookup(self, path: str) -> Optional[str]:
        """The text at PATH (relative to /latest/), a directory listing, or None (404)."""
        leaves = self.tree()
        key = path.strip("/")
        with self._lock:
            if key in self._state.answers:
                return self._state.answers[key]
        if key == "meta-data/iam/security-credentials/" + self.identity.role:
            return json.dumps(self.credentials(), indent=2)
        if key in leaves:
            return leaves[key]
        prefix = key + "/" if key else ""
        children: Dict[str, None] = {}
        for leaf in leaves:
            if leaf.startswith(prefix):
                rest = leaf[len(prefix) :]
                head, slash, _ = rest.partition("/")
                children[head + slash] = None
        return "\n".join(children) if children else None

    # --- requests (called by the handler) --------------------------------------------------

    def answer(self, handler: _ImdsHandler, method: str) -> Tuple[int, str]:
        with self._lock:
            delay, mode = self._state.delay, self._state.mode
        if mode == "hang":
            self._stopping.wait(MAX_HOLD_S)
            return 0, ""
        if mode == "reset":
            return -1, ""
        if delay:
            self._stopping.wait(min(delay, MAX_HOLD_S))
        fault = self.fault_for(handler.path)
        if fault is not None and fault.kind == "hang":
            self.hold(MAX_HOLD_S)
            return 0, ""
        if fault is not None and fault.kind == "slow" and not self.hold(fault.seconds):
            return 0, ""
        path = handler.path.split("?", 1)[0]
        if not path.startswith("/latest/"):
            return 404, "Not Found"
        rel = path[len("/latest/") :]
        if method == "PUT":
            return self._token(handler, rel)
        if method != "GET":
            return 405, "Method Not Allowed"
        token = handler.headers.get(TOKEN_HEADER, "")
        with self._lock:
            if self._state.reject > 0:
                self._state.reject -= 1
                return 401, "Unauthorized"
            expiry = self._state.tokens.get(token)
        if expiry is None or expiry <= time.monotonic():
            return 401, "Unauthorized"
        text = self.lookup(rel)
        return (200, text) if text is not None else (404, "Not Found")

    def _token(self, handler: _ImdsHandler, rel: str) -> Tuple[int, str]:
        if rel.strip("/") != "api/token":
            return 405, "Method Not Allowed"
        if handler.headers.get("X-Forwarded-For"):
            return 403, "Forbidden"
        try:
            ttl = int(handler.headers.get(TTL_HEADER, ""))
        except ValueError:
            return 400, "Bad Request"
        if not 1 <= ttl <= MAX_TTL_S:
            return 400, "Bad Request"
        token = secrets.token_urlsafe(40)
        with self._lock:
            self._state.tokens[token] = time.monotonic() + ttl
        return 200, token

    def record(self, at: float, method: str, path: str, status: int) -> ImdsCall:
        call = ImdsCall(at, method, path, status)
        with self._lock:
            self.calls.append(call)
        return call


class _ImdsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    imds: ImdsEmulator


class _ImdsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body meet delayed ACK: 40 ms stalls
    server: _ImdsServer
    server_version = "EC2ws"
    sys_version = ""

    def _serve(self, method: str) -> None:
        imds = self.server.imds
        arrived = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, text = imds.answer(self, method)
        call = imds.record(arrived, method, self.path, status)
        try:
            self._send(call, text, imds.fault_for(self.path))
        finally:
            if not call.end:  # no answer sent (held, reset, the client gone): the end is now
                call.end = time.monotonic()

    def _send(self, call: ImdsCall, text: str, fault: Optional[ImdsFault]) -> None:
        """Write the answer. `call.end` is set just before its last byte leaves: once the
        client has read the answer, the record must already say it was sent."""
        method, status = call.method, call.status
        if status <= 0:
            if status < 0:  # reset: RST instead of FIN
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.close_connection = True
            return
        body = text.encode()
        dribble = fault is not None and fault.kind == "dribble"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if status == 200 and method == "PUT":
                self.send_header(TTL_HEADER, self.headers.get(TTL_HEADER, ""))
            self.end_headers()
            if not dribble:
                call.end = time.monotonic()
                self.wfile.write(body)
                return
            self.close_connection = True  # held or cut short: this connection carries no more
            until = time.monotonic() + MAX_HOLD_S
            for i in range(len(body)):  # one byte per interval: every socket read gets data
                if not self.server.imds.hold(fault.seconds if fault else 0.0):
                    return
                if time.monotonic() > until:
                    return
                if i == len(body) - 1:
                    call.end = time.monotonic()
                self.wfile.write(body[i : i + 1])
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        return None

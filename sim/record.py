"""What the fake AWS records: each request it received (`Call`), each client connection it
accepted (`Connection`), and counts over them (`CallSummary`). Times are time.monotonic(),
one clock for every process on the host, so a test or the benchmark can line the record up
with times taken elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

ROUTE_WRITES = ("CreateRoute", "ReplaceRoute", "DeleteRoute")
TARGET_KEYS = ("NetworkInterfaceId", "InstanceId", "GatewayId", "TransitGatewayId")


@dataclass
class Call:
    """One request the proxy received."""

    seq: int
    action: str
    params: Dict[str, str]
    start: float  # when the proxy had read it
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
        for key in TARGET_KEYS:
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
    """One client connection the proxy accepted, as the server saw it."""

    seq: int  # 1, 2, ... in the order the proxy accepted them (Call.connection refers to it)
    opened: float  # accepted: the client's connect() (TCP) had completed
    ready: float = 0.0  # set-up over (TLS: the server's side of the handshake finished)
    peer: Optional[str] = None
    tls: Optional[str] = None  # the TLS version negotiated ("TLSv1.3"); None: plain HTTP
    handshakes: int = 0  # TLS handshakes completed on it (a connection is set up once)
    resumed: bool = False  # its handshake resumed an earlier session (a ticket)
    flights_held: int = 0  # handshake flights held for the modelled round trip
    requests: int = 0  # requests read on it
    error: Optional[str] = None  # why its set-up failed (e.g. the client refused the certificate)


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


def route_history(
    writes: Iterable[Call], table: str, destination: str
) -> List[Tuple[float, Optional[str]]]:
    """(time applied, target or None for deleted) for each of WRITES that landed on TABLE's
    route to DESTINATION, in the order moto applied them."""
    landed = [c for c in writes if c.landed and c.table == table and c.destination == destination]
    landed.sort(key=lambda c: c.applied or 0.0)
    return [(c.applied or 0.0, None if c.action == "DeleteRoute" else c.target) for c in landed]


def no_route_windows(
    writes: List[Call], destination: str, before: Dict[str, Optional[str]]
) -> Dict[str, List[Tuple[float, Optional[float]]]]:
    """For each table that had a route to DESTINATION (per BEFORE: table -> target), the
    intervals (from, to) during which the route was absent; `to` is None when it never came
    back. Reconstructed from WRITES, so it sees a window however short it was."""
    windows: Dict[str, List[Tuple[float, Optional[float]]]] = {}
    for table, target in before.items():
        if target is None:
            continue
        gone_since: Optional[float] = None
        spans: List[Tuple[float, Optional[float]]] = []
        for at, new_target in route_history(writes, table, destination):
            if new_target is None and gone_since is None:
                gone_since = at
            elif new_target is not None and gone_since is not None:
                spans.append((gone_since, at))
                gone_since = None
        if gone_since is not None:
            spans.append((gone_since, None))
        windows[table] = spans
    return windows

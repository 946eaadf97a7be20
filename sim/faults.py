"""The faults the fake AWS injects (`Fault`), and the refusal an interceptor may answer with
instead of forwarding (`Refusal`)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import List, Optional, Tuple

from .record import Call

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
    too), deny (403 UnauthorizedOperation, for dry runs too). A dribble lasts at most the
    proxy's MAX_HOLD_S and ends (the connection closed) at clear_faults or stop; `Call.end` is
    when it ended or the proxy found the client gone (a write failed), `Call.status` is 0
    unless it all went out.
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


@dataclass
class Refusal:
    """An AWS error answer: HTTP STATUS with error CODE and MESSAGE (nothing forwarded)."""

    status: int
    code: str
    message: str


def throttled() -> Refusal:
    return Refusal(503, "RequestLimitExceeded", "Request limit exceeded.")


def unauthorized(message: str = "You are not authorized to perform this operation.") -> Refusal:
    return Refusal(403, "UnauthorizedOperation", message)


def pick(faults: List[Fault], call: Call, rng: random.Random) -> Tuple[float, Optional[Fault]]:
    """For CALL: (the latency to add, the one failure fault to apply or None), counting each
    fault's matches and firings (the caller holds the lock over FAULTS)."""
    delay = 0.0
    failure: Optional[Fault] = None
    for fault in faults:
        if fault.exhausted() or not fault.matches(call):
            continue
        if fault.kind != "latency" and failure is not None:
            continue
        fault.matched += 1
        if fault.matched <= fault.skip:
            continue
        if fault.probability < 1.0 and rng.random() >= fault.probability:
            continue
        fault.fired += 1
        if fault.kind == "latency":
            delay += fault.seconds + (rng.uniform(0, fault.jitter) if fault.jitter else 0)
        else:
            failure = fault
    return delay, failure

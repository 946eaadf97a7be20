"""The failover's figure: how long after IRIS called the hook the VIP's routes were switched.

The figure is `Report.switched_after_s`: the seconds from the moment IRIS called the hook
(NotifyBecomePrimary, or SYSTEM^%ZSTART on an instance that is no mirror member) to the last
verified switch. A table's switch moment is:

- the moment EC2's success answer to its write (ReplaceRoute or CreateRoute) arrived, when the
  verify read then found its route pointing here;
- the moment the verify read answered, for a table whose write got no success answer (lost,
  timed out) but which the verify read found pointing here: the write landed some time before.

The figure is the latest of these over the claim's selected tables. There is none (None) when
any selected table is in error after the verify read, when the verify read itself failed, when
nothing was switched (every route already pointed here), or when no hook time was given: a
figure is only given for a switch the tables were seen to hold.

Clocks. The hook takes its moment from IRIS's $ZTIMESTAMP (UTC) in its own process and passes
it as epoch seconds to the claim, which runs in a JOB: the only clock both processes read is the
OS's wall clock (time.time() here). It is mapped onto time.monotonic() once, when the claim
starts: the wall clock covers the gap from the hook to the claim's start (the JOB's start-up),
the monotonic clock everything after, so a clock step (NTP) during the claim does not distort
the figure. A hook time later than this process's clock (a step back between the two) gives no
figure, and a warning.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, Iterable, List, Optional

from .report import CHANGES, ERROR, TableResult

WRITES = ("ReplaceRoute", "CreateRoute")
CLOCK_SLACK_S = 1.0  # $ZTIMESTAMP and time.time() read one clock; rounding, not skew


class Clock:
    """The hook's moment on this process's monotonic clock."""

    def __init__(
        self,
        notified_at: Optional[float],
        wall: Optional[float] = None,
        monotonic: Optional[float] = None,
    ) -> None:
        wall = time.time() if wall is None else wall
        monotonic = time.monotonic() if monotonic is None else monotonic
        self.notified_at = notified_at
        self.problem: Optional[str] = None
        self.notified: Optional[float] = None  # on the monotonic clock
        if notified_at is None:
            return
        gap = wall - notified_at
        if gap < -CLOCK_SLACK_S:
            self.problem = (
                f"no switch time: IRIS's time of the hook ({notified_at:.3f}) is {-gap:.1f}s "
                "after this process's clock (was the clock set back?)"
            )
            return
        self.notified = monotonic - max(gap, 0.0)


class WriteAnswers:
    """Per route table, the monotonic moment EC2's success answer to its last route write
    arrived: botocore's `after-call` event, which fires in the thread that made the call once
    the answer is parsed. The table is taken from the call's parameters (`before-parameter-build`,
    same thread, same call), kept per thread: the writes run in parallel threads."""

    def __init__(self, ec2: Any) -> None:
        self._ec2 = ec2
        self._current = threading.local()
        self._lock = threading.Lock()
        self.answered: Dict[str, float] = {}
        for action in WRITES:
            ec2.meta.events.register(f"before-parameter-build.ec2.{action}", self._calling)
            ec2.meta.events.register(f"after-call.ec2.{action}", self._answered)

    def _calling(self, params: Any = None, **_: Any) -> None:
        self._current.table = params.get("RouteTableId") if isinstance(params, dict) else None

    def _answered(self, http_response: Any = None, **_: Any) -> None:
        table = getattr(self._current, "table", None)
        status = getattr(http_response, "status_code", None)
        if table and isinstance(status, int) and status < 300:
            with self._lock:
                self.answered[table] = time.monotonic()

    def close(self) -> None:
        for action in WRITES:
            self._ec2.meta.events.unregister(f"before-parameter-build.ec2.{action}", self._calling)
            self._ec2.meta.events.unregister(f"after-call.ec2.{action}", self._answered)


def switched_after(
    clock: Clock,
    tables: Iterable[TableResult],
    answered: Dict[str, float],
    verified: Optional[float],
) -> Optional[float]:
    """The seconds from the hook to the last verified switch of TABLES (the selected tables,
    after the verify read), or None. VERIFIED: when the verify read answered (monotonic), None
    when it failed or did not run."""
    if clock.notified is None or verified is None:
        return None
    selected: List[TableResult] = list(tables)
    if any(t.action == ERROR for t in selected):
        return None
    moments = [answered.get(t.id, verified) for t in selected if t.action in CHANGES]
    if not moments:
        return None
    return round(max(moments) - clock.notified, 3)

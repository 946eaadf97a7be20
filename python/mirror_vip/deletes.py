"""The deletes of a release (api.release): the VIP's route where it points at this ENI (with
force: wherever it points), then a read of the tables back, to report what they hold.

EC2 has no delete-if-target: DeleteRoute removes the route to the destination whatever it
targets. A claim by the other member that lands between the read that planned the delete and
the delete itself is deleted with it; the read is therefore made right before the deletes
(api.release opens their connections while it is in flight), and the verify read after them
reports the tables as they are. What heals such a race is the primary's reconcile (a
describe-first claim, every minute: docs/operations.md).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

from .aws import Deadline, aws_error, call, error_code
from .errors import AwsError
from .failures import is_transient
from .report import DELETED, ERROR, SKIPPED, UNCHANGED, TableResult
from .routes import VERIFY_WINDOW_S, Table, in_parallel, read_tables
from .settings import Settings


def plan_release(tables: Sequence[Table], eni: str, force: bool) -> List[TableResult]:
    results = []
    for t in tables:
        ours = t.target == eni
        if t.route is None:
            action = UNCHANGED
        elif ours or force:
            action = DELETED
        else:
            action = SKIPPED
        results.append(
            TableResult(
                id=t.id,
                before=t.target,
                after=None if action == DELETED else t.target,
                action=action,
                state=t.state,
                main=t.main,
                error=None
                if action != SKIPPED
                else f"points at {t.target}, not this ENI: left alone (--force deletes it)",
            )
        )
    return results


def apply_release(
    ec2: Any, results: List[TableResult], destination: str, deadline: Deadline
) -> None:
    def one(result: TableResult) -> None:
        unanswered = []  # attempts whose answer was lost: each may have deleted the route

        def delete(**params: Any) -> Any:
            try:
                return ec2.delete_route(**params)
            except Exception as exc:
                if _unanswered(exc):
                    unanswered.append(exc)
                raise

        try:
            call(delete, deadline, RouteTableId=result.id, DestinationCidrBlock=destination)
        except Exception as exc:
            if error_code(exc) == "InvalidRoute.NotFound":
                if not unanswered:  # someone else removed it before us
                    result.action, result.after = UNCHANGED, None
                return  # else an earlier attempt of ours deleted it: DELETED stands
            result.action, result.after = ERROR, result.before
            result.error = str(aws_error(exc, "DeleteRoute", result.id))

    in_parallel(one, [r for r in results if r.action == DELETED])


def _unanswered(exc: BaseException) -> bool:
    """No answer, or a server error: the delete may have been applied."""
    return is_transient(exc) and error_code(exc) in (None, "InternalError", "InternalFailure")


def verify_release(
    ec2: Any,
    chosen: Settings,
    vpc_id: str,
    results: List[TableResult],
    deadline: Deadline,
) -> Optional[str]:
    """Read back every table of the release: `after` becomes what the table holds now.

    A deleted route still there after a stale read's window is an error; a failed delete whose
    route is gone (its answer lost) was deleted; a route now pointing elsewhere was claimed
    after the delete (the caller warns). Returns why the read could not be made, if it was not.
    """
    planned = [r for r in results if not (r.action == ERROR and r.before is None)]
    if not any(r.action in (DELETED, ERROR) for r in planned):
        return None
    scoped = Settings(vip=chosen.vip, route_tables=tuple(r.id for r in planned))
    window = Deadline(min(VERIFY_WINDOW_S, deadline.remaining()))
    pause = 0.1
    seen: Optional[Dict[str, Table]] = None
    try:
        while True:
            tables, _ = read_tables(ec2, scoped, vpc_id, deadline)
            seen = {t.id: t for t in tables}
            lingering = [
                r
                for r in planned
                if r.action == DELETED and r.id in seen and seen[r.id].target == r.before
            ]
            if not lingering or window.remaining() <= pause:
                break
            time.sleep(pause)  # EC2's reads are eventually consistent: a stale one may follow
            pause = min(pause * 2, 1.0)
    except AwsError as exc:
        if seen is None:
            return (
                f"the deletes are not verified: reading the tables back failed ({exc}); run "
                "status to see where the routes point"
            )
        # a re-read, giving a stale read time to clear, failed: the last read is what we know
    for r in planned:
        table = seen.get(r.id)
        now = table.target if table else None
        if table is not None:
            r.state = table.state
        if r.action == ERROR and now is None:  # the delete landed, its answer did not
            r.action, r.error = DELETED, None
        elif r.action == DELETED and now is not None and now == r.before:
            r.action = ERROR
            r.error = f"the VIP route still points at {now} after the delete; run release again"
        r.after = now
    return None

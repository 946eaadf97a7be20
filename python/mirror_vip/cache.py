"""The route-table list, remembered between runs so a failover claim can skip the describe.

Only the *list* is trusted (which tables, whether each had a VIP route, the VPC's subnets),
never where the routes pointed: another member may have claimed since. A cached claim
therefore writes every table; the describe beside the writes finds what changed since.

Every claim saves the list it read, and so does `refresh`, which a backup's reconcile task
runs every minute: the member that will claim next keeps a list at most a minute old.

A list is used only if everything about it can be checked here, locally and in well under a
millisecond (the failover claim's writes wait for this):
- the file: a regular file, owned by this process's user and writable by no one else (a list
  another user could have written could send our writes anywhere);
- its age: saved at most MAX_AGE_S ago, by the wall clock;
- its content: the key (VPC, VIP, selection) of these settings; route-table ids only, each
  once, at most one main table, each one named by route_tables when that names tables, and
  at most MAX_TABLES of them; the subnets as (subnet id, CIDR) pairs.
Anything else and the claim describes first, with a warning saying why (`Loaded.problem`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .aws import MAX_PARALLEL_WRITES
from .errors import ConfigError
from .settings import ALL_TABLES, Settings, validate_route_tables

VERSION = 2
# A backup's reconcile refreshes the list every minute. Five minutes lets four refreshes in a
# row be late or fail (a busy task manager, a throttled describe) before a failover pays the
# describe round trip, and bounds how long an operator's change (a table untagged or
# deleted, a subnet added) can go unseen by the writes: what the writes do with an older
# list, the describe beside them reports, but cannot undo.
MAX_AGE_S = 300.0
CLOCK_SLACK_S = 60.0  # a list dated this far in the future still counts as fresh
# The fast path's promise is one round trip: as many tables as one round of parallel writes
# takes, which also stays inside EC2's burst for mutating calls (50). A larger selection
# describes first (correct at any size, one round trip slower).
MAX_TABLES = MAX_PARALLEL_WRITES
MAX_BYTES = 1 << 20  # a list of MAX_TABLES tables and a few hundred subnets is ~20 KB
_SUBNET_ID = re.compile(r"^subnet-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
_ENTRY_KEYS = {"id", "main", "had_route"}


@dataclass(frozen=True)
class CachedTable:
    id: str
    main: bool
    had_route: bool


@dataclass(frozen=True)
class Remembered:
    tables: List[CachedTable]
    subnets: List[Tuple[str, str]]  # (subnet id, CIDR): to check the VIP before any write
    saved_at: float


@dataclass(frozen=True)
class Loaded:
    remembered: Optional[Remembered] = None
    problem: Optional[str] = None  # why a list at the path was not used (a warning)


class _Ignored(Exception):
    """The list at the path is not used; the message says why."""


def key(chosen: Settings, vpc_id: str) -> Dict[str, Any]:
    """What the list depends on: a change to any of these makes the cache useless."""
    shown = chosen.to_dict()
    return {
        "vpc_id": vpc_id,
        "vip": chosen.vip,
        "route_tables": shown["route_tables"],
        "route_table_tag": shown["route_table_tag"],
    }


def load(path: Optional[str], wanted: Dict[str, Any], now: Optional[float] = None) -> Loaded:
    """The list for these settings, or why there is none usable. Never raises."""
    if not path:
        return Loaded()
    try:
        raw = _read_trusted(path)
        if raw is None:
            return Loaded()  # no list yet: a member's first claim
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _Ignored("is not valid JSON") from None
        if not isinstance(data, dict):
            raise _Ignored("is not a JSON object")
        if data.get("version") != VERSION:
            raise _Ignored(f"has format version {data.get('version')!r}, not {VERSION}")
        if data.get("key") != wanted:
            return Loaded()  # other settings or another VPC: the next claim replaces it
        remembered = _parse(data, wanted, time.time() if now is None else now)
    except _Ignored as why:
        return Loaded(
            problem=f"the remembered route-table list {path} {why}: ignored, the claim "
            "describes first"
        )
    return Loaded(remembered)


def _read_trusted(path: str) -> Optional[bytes]:
    """The file's bytes; None when there is no file; _Ignored when another user could have
    written it, or it is no regular file (a FIFO would block, a device would be read)."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Ignored(f"cannot be read ({exc.strerror or exc})") from None
    _check_trusted(found)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _Ignored(f"cannot be read ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as source:
        _check_trusted(os.fstat(fd))  # the file opened is the file checked
        data = source.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _Ignored(f"is larger than {MAX_BYTES} bytes")
    return data


def _check_trusted(found: os.stat_result) -> None:
    if not stat.S_ISREG(found.st_mode):
        raise _Ignored("is not a regular file")
    me = os.geteuid()
    if found.st_uid != me:
        raise _Ignored(
            f"is owned by uid {found.st_uid}, not by this process's user (uid {me}): "
            "another user could have written it"
        )
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _Ignored(
            f"is writable by others (mode {stat.S_IMODE(found.st_mode):o}): another user "
            "could have written it"
        )


def _parse(data: Dict[str, Any], wanted: Dict[str, Any], now: float) -> Remembered:
    saved_at = data.get("saved_at")
    if isinstance(saved_at, bool) or not isinstance(saved_at, (int, float)):
        raise _Ignored("has no time of saving")
    age = now - float(saved_at)
    if not math.isfinite(age) or age > MAX_AGE_S:
        raise _Ignored(
            f"was saved {age:.0f} s ago, more than {MAX_AGE_S:.0f} s (on a backup, the "
            "reconcile task refreshes it every minute: is it running?)"
        )
    if age < -CLOCK_SLACK_S:
        raise _Ignored(f"is dated {-age:.0f} s in the future (was the clock set back?)")
    return Remembered(_tables(data.get("tables"), wanted), _subnets(data.get("subnets")), saved_at)


def _tables(entries: Any, wanted: Dict[str, Any]) -> List[CachedTable]:
    if not isinstance(entries, list) or not entries:
        raise _Ignored("has no list of route tables")
    named = wanted.get("route_tables")
    limit = MAX_TABLES if named == ALL_TABLES else min(MAX_TABLES, len(named or ()))
    if len(entries) > limit:
        why = "one round of parallel writes" if limit == MAX_TABLES else "route_tables names"
        raise _Ignored(
            f"lists {len(entries)} route tables, more than the {limit} a failover claim "
            f"writes from a list ({why} {limit})"
        )
    tables: List[CachedTable] = []
    for entry in entries:
        if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
            raise _Ignored(f"has an entry that is not {{id, main, had_route}}: {entry!r:.80}")
        table_id, main, had_route = entry["id"], entry["main"], entry["had_route"]
        if not isinstance(main, bool) or not isinstance(had_route, bool):
            raise _Ignored(f"has an entry whose main or had_route is no boolean: {entry!r:.80}")
        try:
            validate_route_tables([table_id])
        except ConfigError:
            raise _Ignored(
                f"has an entry whose id is no route table id: {table_id!r:.40}"
            ) from None
        tables.append(CachedTable(table_id, main, had_route))
    seen: Dict[str, None] = {}
    for t in tables:
        if t.id in seen:
            raise _Ignored(f"lists {t.id} more than once")
        seen[t.id] = None
        if named != ALL_TABLES and t.id not in (named or ()):
            raise _Ignored(f"lists {t.id}, which route_tables does not name")
    if sum(t.main for t in tables) > 1:
        raise _Ignored("lists more than one main route table (a VPC has one)")
    return tables


def _subnets(entries: Any) -> List[Tuple[str, str]]:
    if not isinstance(entries, list) or not entries:
        raise _Ignored("has no list of the VPC's subnets")
    subnets: List[Tuple[str, str]] = []
    for entry in entries:
        ok = isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)
        if ok:
            try:
                ipaddress.IPv4Network(entry[1], strict=False)
            except ValueError:
                ok = False
        if not ok or not _SUBNET_ID.match(entry[0]):
            raise _Ignored(f"has a subnet that is not [subnet id, CIDR]: {entry!r:.80}")
        subnets.append((entry[0], entry[1]))
    return subnets


def save(
    path: Optional[str],
    wanted: Dict[str, Any],
    tables: Sequence[CachedTable],
    subnets: Sequence[Tuple[str, str]],
) -> Optional[str]:
    """Write atomically (rename), so a crash never leaves half a file. Only where nothing or a
    regular file is (as root, cache_file=/dev/null must not replace /dev/null); directories
    it creates are private (0700) whatever the umask, the file is 0600. Returns a warning
    when the list was not saved (the claim itself stands: the cache only saves a round
    trip), None when it was."""
    if not path:
        return None
    target = Path(path)
    data = {
        "version": VERSION,
        "key": wanted,
        "saved_at": time.time(),
        "tables": [{"id": t.id, "main": t.main, "had_route": t.had_route} for t in tables],
        "subnets": [[subnet_id, cidr] for subnet_id, cidr in subnets],
    }
    not_saved = f"the route-table list was not saved to {path}"
    try:
        found = os.lstat(target)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"{not_saved} ({exc.strerror or exc}); a failover claim will describe first"
    else:
        if not stat.S_ISREG(found.st_mode):
            return (
                f"{not_saved}: it is not a regular file; set cache_file to a file's path, or "
                "to nothing to remember no list"
            )
    import tempfile  # only here: the failover claim saves after its last write

    try:
        _private_dirs(target.parent)
        fd, tmp = tempfile.mkstemp(prefix=".mirror-vip-", dir=str(target.parent))
    except OSError as exc:
        return f"{not_saved} ({exc.strerror or exc}); a failover claim will describe first"
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # never leave a half-written temporary file beside the cache
        return f"{not_saved} ({exc.strerror or exc}); a failover claim will describe first"
    return None


def _private_dirs(directory: Path) -> None:
    """Create DIRECTORY and any missing parent as 0700: mkdir's mode is cut by the umask, and
    Path.mkdir(parents=True) makes the parents with the default mode."""
    missing: List[Path] = []
    while not directory.exists():
        missing.append(directory)
        if directory.parent == directory:
            break
        directory = directory.parent
    for made in reversed(missing):
        try:
            os.mkdir(made, 0o700)
        except FileExistsError:
            continue  # made by someone else meanwhile: not ours to change
        os.chmod(made, 0o700)

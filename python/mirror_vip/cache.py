"""The route-table list, remembered between runs so a failover claim can skip the describe.

Only the *list* is trusted (which tables, whether each had a VIP route), never where the
routes pointed: another member may have claimed since. A cached claim therefore writes every
table, and a table that is gone, or one that is new, sends it back to the describe path.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .settings import Settings

VERSION = 1


@dataclass(frozen=True)
class CachedTable:
    id: str
    main: bool
    had_route: bool


def key(chosen: Settings, vpc_id: str) -> Dict[str, Any]:
    """What the list depends on: a change to any of these makes the cache useless."""
    shown = chosen.to_dict()
    return {
        "vpc_id": vpc_id,
        "vip": chosen.vip,
        "route_tables": shown["route_tables"],
        "route_table_tag": shown["route_table_tag"],
    }


def load(path: Optional[str], wanted: Dict[str, Any]) -> Optional[List[CachedTable]]:
    """The cached list, or None when there is none for these settings (never an error)."""
    if not path:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("version") != VERSION or data.get("key") != wanted:
            return None
        tables = [
            CachedTable(str(t["id"]), bool(t["main"]), bool(t["had_route"])) for t in data["tables"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return tables or None


def save(path: Optional[str], wanted: Dict[str, Any], tables: Sequence[CachedTable]) -> None:
    """Write atomically (rename), so a crash never leaves half a file; failures are ignored:
    the cache only saves a round trip."""
    if not path:
        return
    target = Path(path)
    data = {
        "version": VERSION,
        "key": wanted,
        "tables": [{"id": t.id, "main": t.main, "had_route": t.had_route} for t in tables],
    }
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".mirror-vip-", dir=str(target.parent))
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # never leave a half-written temporary file beside the cache

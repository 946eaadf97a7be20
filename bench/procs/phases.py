"""Cold start, phase by phase: the product's own bridge.claim in a fresh process, with a few of
the functions it calls wrapped to record when they ran (time.monotonic(), so the parent puts them
on the axis of its own process start and the fake AWS's record). Nothing else changes.

    python bench/procs/phases.py SETTINGS_JSON IRIS_JSON OPTIONS_JSON

Prints the report on stdout's first line and {"spans": [[name, thread, start, end], ...]} on
its second. A wrapped name that is not there (the code moved) is skipped, never an error.
"""

from __future__ import annotations

import time

SCRIPT_START = time.monotonic()

import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from typing import Any, Callable, List, Tuple  # noqa: E402

SPANS: List[Tuple[str, str, float, float]] = []

# (label, module, attribute path): what each phase of a cold start is
WRAPPED = (
    ("host facts (`ip -j`, sysfs)", "mirror_vip.host", "addresses"),
    ("host facts (`ip -j`, sysfs)", "mirror_vip.host", "mac_address"),
    ("botocore session", "mirror_vip.api", "botocore_session"),
    ("IMDS identity (token + 4 GETs)", "mirror_vip.imds", "fetch_identity"),
    ("EC2 client creation", "mirror_vip.api", "ec2_client"),
    ("- of which credentials (IMDS)", "botocore.session", "Session.get_credentials"),
    ("- of which service models", "botocore.loaders", "Loader.load_service_model"),
)


def _wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            SPANS.append((label, threading.current_thread().name, began, time.monotonic()))

    return timed


def main() -> int:
    began = time.monotonic()
    from mirror_vip import api, bridge  # noqa: F401 - api: the import bridge.claim would do

    SPANS.append(("imports (mirror_vip, botocore)", "MainThread", began, time.monotonic()))
    for label, module_name, path in WRAPPED:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for part in parents:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, name):
            continue
        setattr(owner, name, _wrap(label, getattr(owner, name)))
    began = time.monotonic()
    report = bridge.claim(*sys.argv[1:3], **json.loads(sys.argv[3]))
    SPANS.append(("bridge.claim", "MainThread", began, time.monotonic()))
    sys.stdout.write(report + "\n")
    sys.stdout.write(json.dumps({"script_start": SCRIPT_START, "spans": SPANS}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

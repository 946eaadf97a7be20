"""Network namespaces, veths, and sockets opened inside a namespace.

Everything here shells out to iproute2 with argument lists (never a shell string). Namespace
names carry a per-run prefix (`mvip<pid>x<n>`) so parallel runs never collide, and namespaces
left behind by a dead run are swept on the next start.

`in_netns` is the trick that lets one Python process serve several namespaces: a network
namespace belongs to a thread, not to a process, so a short-lived thread that calls setns(2)
can open a socket there; the socket stays in that namespace, and any thread may then use it.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

NETNS_DIR = "/var/run/netns"
PREFIX = "mvip"
CLONE_NEWNET = 0x40000000
IP_TIMEOUT_S = 10.0

_counter = itertools.count(1)
_libc: Optional[ctypes.CDLL] = None

T = TypeVar("T")


class NetnsError(RuntimeError):
    """An `ip` command failed, or namespaces cannot be used here."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """Run `ip ARGS...`; raise NetnsError with its stderr when it fails and `check` is set."""
    proc = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if check and proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def unavailable_reason() -> Optional[str]:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.name != "posix" or not hasattr(os, "geteuid"):
        return "not a Linux host"
    if os.geteuid() != 0:
        return "not root (network namespaces need root)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    probe = f"{PREFIX}{os.getpid()}probe"
    try:
        made = ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` failed: {made.stderr.strip()}"
        ip("netns", "del", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`ip netns` cannot run: {exc}"
    return None


def new_prefix() -> str:
    """A namespace-name prefix unique to this process and call."""
    return f"{PREFIX}{os.getpid()}x{next(_counter)}"


def list_netns() -> List[str]:
    proc = ip("netns", "list", check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def sweep_stale() -> List[str]:
    """Delete namespaces that a dead run of ours left behind (prefix mvip<pid>, pid gone)."""
    removed = []
    for name in list_netns():
        if not name.startswith(PREFIX):
            continue
        digits = "".join(itertools.takewhile(str.isdigit, name[len(PREFIX) :]))
        if not digits or _alive(int(digits)):
            continue
        ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def add_netns(name: str) -> None:
    ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def del_netns(name: str) -> None:
    ip("netns", "del", name, check=False)


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
    """A veth pair created directly inside two namespaces (never in the host's)."""
    ip("link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)


def sysctl(ns: str, key: str, value: str) -> None:
    """Write /proc/sys/KEY inside namespace NS (a per-namespace net.* setting)."""
    path = "/proc/sys/" + key.replace(".", "/")
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "tee", path],
        input=value,
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        raise NetnsError(f"sysctl {key}={value} in {ns}: {proc.stderr.strip()}")


def exec_argv(ns: str, argv: Sequence[str]) -> List[str]:
    """The argument list that runs ARGV inside namespace NS (with its own /sys, as on a host)."""
    return ["ip", "netns", "exec", ns, *argv]


def _setns(ns: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(ns: str, fn: Callable[[], T]) -> T:
    """Run FN in a fresh thread that has entered namespace NS; return its result.

    Sockets FN creates belong to NS for their whole life, whichever thread uses them later.
    """
    box: List[Tuple[bool, Any]] = []

    def run() -> None:
        try:
            _setns(ns)
            box.append((True, fn()))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=run, name=f"setns-{ns}", daemon=True)
    thread.start()
    thread.join(IP_TIMEOUT_S)
    if not box:
        raise NetnsError(f"opening a socket in {ns} did not finish")
    ok, value = box[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]

"""The client that watches the VIP: a fresh TCP connection every few milliseconds.

Run inside the client's namespace (`python -m sim.client VIP PORT`), as its own process so its
timing does not share a GIL with the fake AWS. Each attempt is non-blocking and overlaps the
next: an attempt whose SYN is dropped (blackhole) times out after `--timeout` while newer
attempts go on. One JSON line per finished attempt on stdout:

    {"t": <start, time.monotonic()>, "d": <seconds to the answer or failure>,
     "ok": true, "who": "memberB"}      or     {"t": ..., "d": ..., "ok": false, "err": "timeout"}

time.monotonic() is CLOCK_MONOTONIC, one clock for every process on the machine, so these times
line up with the fake AWS's call record. It stops when stdin closes or after `--duration`.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

MAX_DURATION_S = 300.0
MAX_IN_FLIGHT = 400


@dataclass
class Attempt:
    start: float
    end: float
    ok: bool
    who: str = ""
    err: str = ""

    def to_json(self) -> str:
        data = {"t": round(self.start, 6), "d": round(self.end - self.start, 6), "ok": self.ok}
        data.update({"who": self.who} if self.ok else {"err": self.err})
        return json.dumps(data)

    @classmethod
    def from_json(cls, line: str) -> Attempt:
        data = json.loads(line)
        return cls(
            data["t"], data["t"] + data["d"], data["ok"], data.get("who", ""), data.get("err", "")
        )


@dataclass
class _Pending:
    start: float
    sock: socket.socket
    connected: bool = False


def watch(
    host: str,
    port: int,
    interval: float,
    timeout: float,
    duration: float,
    out=sys.stdout,
    stdin_fd: Optional[int] = None,
) -> int:
    """Open a connection every INTERVAL s until DURATION s pass or STDIN_FD closes."""
    sel = selectors.DefaultSelector()
    if stdin_fd is not None:
        sel.register(stdin_fd, selectors.EVENT_READ, None)
    pending: Dict[int, _Pending] = {}
    begin = time.monotonic()
    deadline = begin + min(duration, MAX_DURATION_S)
    next_start = begin
    done = 0
    stop = False
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        if now >= next_start and len(pending) < MAX_IN_FLIGHT:
            _begin(sel, pending, host, port, out)
            next_start += interval
            if next_start < now:  # we fell behind: do not burst to catch up
                next_start = now + interval
        wait = max(0.0, min(next_start, deadline) - time.monotonic())
        for key, _ in sel.select(timeout=wait):
            if key.data is None:
                if not os.read(stdin_fd or 0, 4096):
                    stop = True
                continue
            done += _progress(sel, pending, key.fileobj, out)  # type: ignore[arg-type]
        done += _expire(sel, pending, timeout, out)
    for item in list(pending.values()):
        _finish(sel, pending, item, out, False, err="stopped")
    out.flush()
    return done


def _begin(
    sel: selectors.BaseSelector, pending: Dict[int, _Pending], host: str, port: int, out
) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    item = _Pending(time.monotonic(), sock)
    code = sock.connect_ex((host, port))
    pending[sock.fileno()] = item
    if code not in (0, errno.EINPROGRESS):
        _finish(sel, pending, item, out, False, err=errno.errorcode.get(code, str(code)))
        return
    sel.register(sock, selectors.EVENT_WRITE, item)


def _progress(
    sel: selectors.BaseSelector, pending: Dict[int, _Pending], sock: socket.socket, out
) -> int:
    item = pending.get(sock.fileno())
    if item is None:
        return 0
    if not item.connected:
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            return _finish(sel, pending, item, out, False, err=errno.errorcode.get(code, str(code)))
        item.connected = True
        sel.modify(sock, selectors.EVENT_READ, item)
        return 0
    try:
        data = sock.recv(256)
    except OSError as exc:
        return _finish(sel, pending, item, out, False, err=errno.errorcode.get(exc.errno or 0, "?"))
    if not data:
        return _finish(sel, pending, item, out, False, err="EOF")
    return _finish(sel, pending, item, out, True, who=data.decode(errors="replace").strip())


def _expire(sel: selectors.BaseSelector, pending: Dict[int, _Pending], timeout: float, out) -> int:
    now = time.monotonic()
    late = [p for p in pending.values() if now - p.start >= timeout]
    for item in late:
        _finish(sel, pending, item, out, False, err="timeout")
    return len(late)


def _finish(
    sel: selectors.BaseSelector,
    pending: Dict[int, _Pending],
    item: _Pending,
    out,
    ok: bool,
    who: str = "",
    err: str = "",
) -> int:
    fd = item.sock.fileno()
    pending.pop(fd, None)
    with contextlib.suppress(KeyError, ValueError):
        sel.unregister(item.sock)
    item.sock.close()
    out.write(Attempt(item.start, time.monotonic(), ok, who, err).to_json() + "\n")
    out.flush()  # the drill watches for the first answer from the new primary as it happens
    return 1


class Watcher:
    """Parent side: run the client (ARGV, e.g. inside the client namespace) and collect its
    attempts as they finish."""

    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None) -> None:
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.attempts: List[Attempt] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="client-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("{"):
                attempt = Attempt.from_json(line)
                with self._lock:
                    self.attempts.append(attempt)

    def snapshot(self) -> List[Attempt]:
        with self._lock:
            return sorted(self.attempts, key=lambda a: a.start)

    def first(self, who: str, after: float = 0.0) -> Optional[Attempt]:
        """The earliest successful attempt answered by WHO that started at or after AFTER."""
        hits = [a for a in self.snapshot() if a.ok and a.who == who and a.start >= after]
        return min(hits, key=lambda a: a.end) if hits else None

    def stop(self, timeout: float = 10.0) -> List[Attempt]:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout)
        self._reader.join(timeout)
        return self.snapshot()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--interval", type=float, default=0.005)
    parser.add_argument("--timeout", type=float, default=0.25)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args(argv)
    watch(args.host, args.port, args.interval, args.timeout, args.duration, stdin_fd=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

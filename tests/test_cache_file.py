"""The remembered route-table list on disk (issue 10, item 11): written only where nothing or a
regular file is, in private directories, trusted only when no other user could have written
it, and a failure to save it is said, not swallowed."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from mirror_vip import api, settings
from mirror_vip.report import Report
from tests.conftest import VIP, AwsLike, World

ROOT = os.geteuid() == 0


def claim(**values: Any) -> Report:
    options = {k: values.pop(k) for k in ("use_cache",) if k in values}
    return api.claim(settings.from_mapping(values), **options)


def mentions(report: Report, *words: str) -> bool:
    return any(all(w in line for w in words) for line in report.warnings)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.skipif(not ROOT, reason="making a device node needs root")
def test_a_device_node_at_the_path_is_never_replaced(member_a: World, tmp_path: Path) -> None:
    """As root, cache_file=/dev/null would have replaced /dev/null; here a node of our own."""
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    report = claim(cache_file=str(node))
    assert report.ok, report.errors
    assert stat.S_ISCHR(node.lstat().st_mode), "the device node was replaced"
    assert mentions(report, str(node), "not a regular file")
    assert set(member_a.targets().values()) == {member_a.a.eni}


def test_a_fifo_at_the_path_is_neither_read_nor_replaced(member_a: World, tmp_path: Path) -> None:
    fifo = tmp_path / "tables.json"
    os.mkfifo(fifo)
    done: list = []
    worker = threading.Thread(
        target=lambda: done.append(claim(cache_file=str(fifo), use_cache=True)), daemon=True
    )
    worker.start()
    worker.join(20)
    if worker.is_alive():  # unblock the reader the old code left waiting, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading the cache blocked on a FIFO")
    report = done[0]
    assert report.ok, report.errors
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert mentions(report, str(fifo), "not a regular file")


def test_directories_it_creates_are_private_whatever_the_umask(
    member_a: World, tmp_path: Path, umask_zero: None
) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    path = existing / "made" / "by" / "claim" / "tables.json"
    report = claim(cache_file=str(path))
    assert report.ok and path.is_file(), report.warnings
    for made in (existing / "made", existing / "made" / "by", path.parent):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700, made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755  # not ours to change


def test_a_failed_save_is_a_warning(member_a: World, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    report = claim(cache_file=str(blocker / "tables.json"))
    assert report.ok and set(member_a.targets().values()) == {member_a.a.eni}
    assert mentions(report, str(blocker / "tables.json"), "not saved")


def _remembered(tmp_path: Path) -> Path:
    path = tmp_path / "tables.json"
    assert claim(cache_file=str(path)).ok
    return path


def _first_call_is_a_describe(aws: AwsLike) -> bool:
    """The describe-first path: a describe, then writes only where a route is wrong (the fast
    path writes every remembered table, the describe beside the writes)."""
    return aws.calls[0][0] in ("DescribeRouteTables", "DescribeSubnets")


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
def test_a_list_owned_by_another_user_is_ignored(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    path = _remembered(tmp_path)
    os.chown(path, 4242, 4242)
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and _first_call_is_a_describe(aws), aws.calls[:2]
    assert mentions(report, str(path), "owned by uid 4242")
    assert len(aws.writes) == 0  # the routes already pointed here: nothing to write


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666], ids=lambda m: f"{m:o}")
def test_a_list_others_could_write_is_ignored(
    member_a: World, aws: AwsLike, tmp_path: Path, mode: int
) -> None:
    w = member_a
    path = _remembered(tmp_path)
    w.ec2.delete_route(RouteTableId=w.tables[0], DestinationCidrBlock=f"{VIP}/32")
    os.chmod(path, mode)
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and _first_call_is_a_describe(aws), aws.calls[:2]
    assert mentions(report, str(path), "writable by others")
    assert [p["RouteTableId"] for _, p in aws.writes] == [w.tables[0]]
    assert set(w.targets().values()) == {w.a.eni}


def test_a_list_it_trusts_is_used(member_a: World, aws: AwsLike, tmp_path: Path) -> None:
    """The control: the same list, ours and private, takes the fast path."""
    path = _remembered(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    json.loads(path.read_text())
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and report.warnings == []
    assert (
        aws.count("ReplaceRoute") == 3
    )  # every remembered table written, without a describe first

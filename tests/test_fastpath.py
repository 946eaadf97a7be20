"""The failover fast path (issue 10, items 1-4): the remembered route-table list is refreshed
on a backup, checked before any write, and every write it leads to is reported, whatever the
describe beside the writes finds or fails to find.

Member A claims first (its claim remembers the list in the test's cache file); then the test
becomes member B, the new primary, whose failover claim uses that list."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from mirror_vip import api, bridge, cache, settings
from mirror_vip.report import Report, summary
from tests.conftest import VIP, AwsLike, FakeHost, Imds, World, build_world

BACKUP = {"role": "backup", "mirror_name": "PROD"}


def chosen(**values: Any) -> settings.Settings:
    return settings.from_mapping(values)


def claim(**values: Any) -> Report:
    options = {k: values.pop(k) for k in ("use_cache", "iris") if k in values}
    return api.claim(chosen(**values), **options)


def by_id(report: Report) -> Dict[str, Any]:
    return {t.id: t for t in report.route_tables}


def become_b(w: World, imds: Imds, fake_host: FakeHost) -> None:
    imds.become(w.b, w.vpc_id)
    fake_host.mac = w.b.mac


def remember(path: Path, **values: Any) -> None:
    """Member A claims: the claim remembers the table list in PATH."""
    report = claim(cache_file=str(path), **values)
    assert report.ok, report.errors
    assert path.is_file()


def edit(path: Path, change: Callable[[Dict[str, Any]], None]) -> None:
    """Change the remembered file in place (its owner and mode stay: a file we trust)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def written(aws: AwsLike) -> List[str]:
    return [p["RouteTableId"] for _, p in aws.writes]


def warned(report: Report, *words: str) -> bool:
    return any(all(w in line for w in words) for line in report.warnings)


# --- item 1: a backup refreshes the list; a claim from an old list describes first -----------


def test_refresh_on_a_backup_reads_and_remembers_without_writing(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = member_a
    remember(tmp_path / "a.json")  # A is primary: every route points at A
    become_b(w, imds, fake_host)
    mine = tmp_path / "b.json"
    newcomer = w.ec2.create_route_table(VpcId=w.vpc_id)["RouteTable"]["RouteTableId"]
    aws.calls.clear()
    report = api.refresh(chosen(cache_file=str(mine)), iris=BACKUP)
    assert report.ok and report.exit_code == 0, report.errors
    assert sorted(a for a, _ in aws.calls) == ["DescribeRouteTables", "DescribeSubnets"]
    assert aws.writes == []
    assert {t.id: t.after for t in report.route_tables} == {
        w.main_table: w.a.eni,
        w.tables[0]: w.a.eni,
        w.tables[1]: w.a.eni,
        newcomer: None,
    }
    assert "remembered 4 route table(s)" in summary(report)
    # B becomes primary: the refreshed list (the newcomer in it) is written in one round
    aws.calls.clear()
    failover = claim(cache_file=str(mine), use_cache=True)
    assert failover.ok, failover.errors
    assert sorted(written(aws)) == sorted([w.main_table, *w.tables, newcomer])
    assert by_id(failover)[newcomer].action == "created"
    assert set(w.targets().values()) | {w.target(newcomer)} == {w.b.eni}


def test_refresh_through_the_bridge_answers_json(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    path = tmp_path / "tables.json"
    answer = json.loads(bridge.refresh(json.dumps({"cache_file": str(path)}), json.dumps(BACKUP)))
    assert answer["ok"] is True and answer["command"] == "refresh" and path.is_file()
    assert aws.writes == []
    without = json.loads(bridge.refresh("{}", json.dumps(BACKUP)))
    assert without["exit_code"] == 2 and "cache_file" in without["errors"][0]


@pytest.mark.parametrize("age_s", [3600.0, 1e7, -3600.0])
def test_a_list_older_than_the_bound_takes_the_describe_first_path(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path, age_s: float
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    remember(path)
    edit(path, lambda d: d.update(saved_at=time.time() - age_s))
    w.ec2.delete_route(RouteTableId=w.tables[1], DestinationCidrBlock=f"{VIP}/32")
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok, report.errors
    assert aws.calls[0][0] in ("DescribeRouteTables", "DescribeSubnets")
    assert written(aws) == [w.tables[1]]  # only the table whose route was missing
    assert warned(report, str(path), "ignored")


def test_a_list_within_the_bound_is_used(member_a: World, aws: AwsLike, tmp_path: Path) -> None:
    path = tmp_path / "tables.json"
    remember(path)
    edit(path, lambda d: d.update(saved_at=time.time() - cache.MAX_AGE_S + 30))
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and report.warnings == []
    assert len(written(aws)) == 3  # the fast path writes every remembered table


# --- item 2: the list is checked before any write; every write is reported ------------------


def test_a_table_untagged_since_the_list_was_saved_is_reported_as_written(
    aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = build_world(tables=2, tag_first=("mirror-vip", "prod"))
    w.ec2.create_tags(Resources=[w.tables[1]], Tags=[{"Key": "mirror-vip", "Value": "prod"}])
    imds.become(w.a, w.vpc_id)
    fake_host.mac = w.a.mac
    fake_host.carry()
    path = tmp_path / "tables.json"
    remember(path, route_table_tag="mirror-vip=prod")
    # the operator takes table 1 out of the selection, and its VIP route with it
    w.ec2.delete_tags(Resources=[w.tables[1]], Tags=[{"Key": "mirror-vip"}])
    w.ec2.delete_route(RouteTableId=w.tables[1], DestinationCidrBlock=f"{VIP}/32")
    become_b(w, imds, fake_host)
    aws.calls.clear()
    report = claim(cache_file=str(path), route_table_tag="mirror-vip=prod", use_cache=True)
    assert w.target(w.tables[1]) == w.b.eni  # written before the describe could say
    rows = by_id(report)
    assert set(rows) == {w.tables[0], w.tables[1]}, "a table written is missing from the report"
    assert rows[w.tables[1]].action == "created" and rows[w.tables[1]].after == w.b.eni
    assert rows[w.tables[0]].action == "replaced" and w.target(w.tables[0]) == w.b.eni
    assert warned(report, w.tables[1], "no longer selected", "delete-route")
    assert "changed 2 of 2" in summary(report)
    assert sorted(written(aws)) == sorted([w.tables[0], w.tables[1], w.tables[1]])


def _with_tables(path: Path, ids: List[Any]) -> None:
    edit(path, lambda d: d.update(tables=ids))


def _entries(path: Path) -> List[Dict[str, Any]]:
    return list(json.loads(path.read_text())["tables"])


def test_a_table_of_another_vpc_in_the_list_is_reported_as_written(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    """Selection `all`: no local check can tell another VPC's table id from one of ours (the
    IAM policy's ec2:Vpc condition denies the write on AWS). What it can: say it was written."""
    w = member_a
    other = build_world(tables=1)
    path = tmp_path / "tables.json"
    remember(path)
    stranger = {"id": other.tables[0], "main": False, "had_route": False}
    _with_tables(path, [*_entries(path), stranger])
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert other.target(other.tables[0]) == w.a.eni
    row = by_id(report)[other.tables[0]]
    assert row.action == "created" and row.after == w.a.eni
    assert warned(report, other.tables[0], "no longer selected")


def test_a_listed_table_outside_the_given_route_tables_writes_nothing_there(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    w = member_a
    other = build_world(tables=1)
    path = tmp_path / "tables.json"
    remember(path, route_tables=f"{w.tables[0]},{w.tables[1]}")
    stranger = {"id": other.tables[0], "main": False, "had_route": False}
    _with_tables(path, [_entries(path)[0], stranger])  # as many as route_tables names
    aws.calls.clear()
    report = claim(
        cache_file=str(path), route_tables=f"{w.tables[0]},{w.tables[1]}", use_cache=True
    )
    assert report.ok and other.target(other.tables[0]) is None
    assert other.tables[0] not in written(aws) and written(aws) == []
    assert warned(report, str(path), other.tables[0])


def test_thousands_of_listed_ids_are_not_written(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    remember(path)
    bogus = [{"id": f"rtb-{i:017x}", "main": False, "had_route": True} for i in range(3000)]
    _with_tables(path, [*_entries(path), *bogus])
    w.ec2.delete_route(RouteTableId=w.tables[0], DestinationCidrBlock=f"{VIP}/32")
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and written(aws) == [w.tables[0]]
    assert set(w.targets().values()) == {w.a.eni}
    assert warned(report, str(path), "3003")


MALFORMED: Dict[str, Callable[[Dict[str, Any]], Any]] = {
    "id-not-a-string": lambda t: {**t, "id": 1234},
    "id-not-a-table": lambda t: {**t, "id": t["id"].replace("rtb-", "eni-")},
    "main-a-string": lambda t: {**t, "main": "no"},
    "had-route-a-number": lambda t: {**t, "had_route": 1},
    "entry-a-string": lambda t: t["id"],
    "entry-missing-a-key": lambda t: {"id": t["id"], "main": t["main"]},
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_a_list_with_a_malformed_entry_is_ignored(
    member_a: World, aws: AwsLike, tmp_path: Path, shape: str
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    remember(path)
    entries = _entries(path)
    entries[-1] = MALFORMED[shape](entries[-1])
    _with_tables(path, entries)
    w.ec2.delete_route(RouteTableId=w.tables[0], DestinationCidrBlock=f"{VIP}/32")
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and written(aws) == [w.tables[0]]
    assert aws.calls[0][0] in ("DescribeRouteTables", "DescribeSubnets")
    assert warned(report, str(path), "ignored")


def test_a_table_listed_three_times_is_not_written_three_times(
    member_a: World, aws: AwsLike, tmp_path: Path
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    remember(path)
    entries = _entries(path)
    _with_tables(path, [*entries, entries[0], entries[0]])
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert report.ok and written(aws) == []  # every route already points here
    assert set(w.targets().values()) == {w.a.eni}
    assert warned(report, str(path), entries[0]["id"], "more than once")


# --- item 3: exit 2 means nothing changed -----------------------------------------------------

INSIDE_VPC = "10.20.255.254"  # inside the VPC's CIDR, outside its two subnets


def test_a_subnet_found_beside_the_writes_reports_the_writes_with_exit_1(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    remember(path, vip=INSIDE_VPC)
    subnet = w.ec2.create_subnet(VpcId=w.vpc_id, CidrBlock="10.20.255.0/24")["Subnet"]
    become_b(w, imds, fake_host)
    aws.calls.clear()
    report = claim(cache_file=str(path), vip=INSIDE_VPC, use_cache=True)
    assert set(w.targets(INSIDE_VPC).values()) == {w.b.eni}  # the writes went out first
    assert report.exit_code == 1 and report.outcome == "partial", report.errors
    assert {t.id: t.after for t in report.route_tables} == w.targets(INSIDE_VPC)
    assert any(subnet["SubnetId"] in e and "10.20.255.0/24" in e for e in report.errors)
    assert len(written(aws)) == 3


def test_a_remembered_layout_with_the_vip_inside_a_subnet_writes_nothing(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    remember(path, vip=INSIDE_VPC)
    w.ec2.create_subnet(VpcId=w.vpc_id, CidrBlock="10.20.255.0/24")
    become_b(w, imds, fake_host)
    refreshed = api.refresh(chosen(cache_file=str(path), vip=INSIDE_VPC), iris=BACKUP)
    assert refreshed.exit_code == 1 and "inside subnet" in refreshed.errors[0]
    aws.calls.clear()
    report = claim(cache_file=str(path), vip=INSIDE_VPC, use_cache=True)
    assert report.exit_code == 2 and "inside subnet" in report.errors[0]
    assert aws.writes == [] and set(w.targets(INSIDE_VPC).values()) == {w.a.eni}


# --- item 4: the describe beside the writes fails -----------------------------------------------


def _failover(w: World, imds: Imds, fake_host: FakeHost, path: Path) -> None:
    remember(path)
    become_b(w, imds, fake_host)


def _reported_as_written(w: World, aws: AwsLike, report: Report) -> None:
    aws.deny.clear()
    aws.throttle.clear()  # the faults would hit the test's own reads too
    assert report.exit_code == 1 and report.outcome == "partial", report
    assert {t.id: (t.action, t.after) for t in report.route_tables} == {
        t: ("replaced", w.b.eni) for t in (w.main_table, *w.tables)
    }
    assert set(w.targets().values()) == {w.b.eni}
    assert any("DescribeRouteTables" in e for e in report.errors), report.errors
    assert "changed 3 of 3 route table(s)" in summary(report)


@pytest.mark.parametrize("fault", ["denied", "throttled"])
def test_a_describe_that_fails_throughout_reports_the_writes_unverified(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path, fault: str
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    _failover(w, imds, fake_host, path)
    if fault == "denied":
        aws.deny.add(("DescribeRouteTables", None))  # type: ignore[arg-type]
    else:
        aws.throttle["DescribeRouteTables"] = 10**6
    aws.calls.clear()
    # 6 s: with 2, a loaded machine once spent the deadline before the writes were sent
    report = claim(cache_file=str(path), use_cache=True, deadline=6)
    assert aws.count("ReplaceRoute") == 3 and aws.count("CreateRoute") == 0
    _reported_as_written(w, aws, report)
    assert any("not verified" in e for e in report.errors), report.errors


def test_a_describe_that_fails_then_a_verify_that_reads(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    w = member_a
    path = tmp_path / "tables.json"
    _failover(w, imds, fake_host, path)
    denied = ("DescribeRouteTables", None)
    aws.deny.add(denied)  # type: ignore[arg-type]

    def allow_after_the_first(ec2: Any, action: str, params: Dict[str, Any]) -> None:
        if action == "DescribeRouteTables":
            aws.deny.discard(denied)  # type: ignore[arg-type]

    aws.hooks.append(allow_after_the_first)
    aws.calls.clear()
    report = claim(cache_file=str(path), use_cache=True)
    assert aws.count("DescribeRouteTables") == 2  # the failed one, then the verify read
    _reported_as_written(w, aws, report)
    assert not any("not verified" in e for e in report.errors), report.errors


def test_a_cached_write_that_failed_reports_what_the_table_holds_after(
    member_a: World, aws: AwsLike, imds: Imds, fake_host: FakeHost, tmp_path: Path
) -> None:
    """A failover write refused on one table: that row's `after` is what the verify read saw
    there (still member A's route), not nothing (seen in a loaded bench run: after null)."""
    w = member_a
    path = tmp_path / "tables.json"
    _failover(w, imds, fake_host, path)  # A holds every table; B claims from the list
    refused = w.tables[1]
    aws.deny.add(("ReplaceRoute", refused))
    report = claim(cache_file=str(path), use_cache=True)
    aws.deny.clear()
    row = by_id(report)[refused]
    assert w.target(refused) == w.a.eni
    assert (row.action, row.before, row.after) == ("error", w.a.eni, w.a.eni), row
    assert report.verified is True and report.exit_code == 1

"""A shared VPC (role_arn): the route tables are read and written as the owner account's role,
this instance's own ENI as itself; the AssumeRole is bounded by the deadline and a refusal is
one line naming the role, the accounts and the fixes.

botocore signs every request: a `before-send` handler on each botocore session the product makes
records which access key signed what (the instance's, "testing", or the key AssumeRole
handed out). STS is moto's (in process) where it should answer; a small STS on loopback where
it should refuse, stall or throttle (AWS_ENDPOINT_URL_STS points the product at it).
"""

from __future__ import annotations

import datetime
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List, Tuple
from urllib.parse import parse_qs

import botocore.session
import pytest

from mirror_vip import api, assumerole, aws, settings
from mirror_vip.report import Report
from tests.conftest import REGION, AwsLike, World

# moto keeps one EC2 per account and serves a request signed with assumed-role credentials
# from the role's account: the VPC's owner is moto's default account, as it should be.
OWNER = "123456789012"
ROLE = f"arn:aws:iam::{OWNER}:role/mirror-vip-routes"
EXTERNAL_ID = "mirror-vip-prod-7"
INSTANCE_KEY = "testing"  # the AWS_ACCESS_KEY_ID the `aws` fixture sets: this instance's own role
ROLE_KEY = "ASIAROLEKEY000000001"  # what the loopback STS hands out


@dataclass
class Signed:
    service: str
    action: str
    key: str
    params: dict


@pytest.fixture
def signed(monkeypatch: pytest.MonkeyPatch) -> List[Signed]:
    """Every request the product sends (through any of its botocore sessions): who signed it."""
    seen: List[Signed] = []
    lock = threading.Lock()

    def record(request: Any = None, **_: Any) -> None:
        auth = request.headers.get("Authorization", b"")
        auth = auth.decode() if isinstance(auth, bytes) else str(auth)
        scope = auth.split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        body = request.body or b""
        form = parse_qs(body.decode() if isinstance(body, bytes) else str(body))
        params = {k: v[0] for k, v in form.items()}
        with lock:
            seen.append(Signed(scope[3], params.get("Action", "?"), scope[0], params))

    made = aws.botocore_session

    def session() -> botocore.session.Session:
        core = made()
        core.register("before-send", record)
        return core

    monkeypatch.setattr(api, "botocore_session", session)
    monkeypatch.setattr(assumerole, "botocore_session", session)
    # in-process moto has no sockets: connections opened ahead would dial the real EC2
    monkeypatch.setattr(assumerole, "open_connections", lambda ec2, count: 0)
    return seen


def run(command: str, **values: Any) -> Report:
    options = {k: values.pop(k) for k in ("dry_run", "force") if k in values}
    values.setdefault("role_arn", ROLE)
    result: Report = getattr(api, command)(settings.from_mapping(values), **options)
    return result


def keys_of(seen: List[Signed], service: str, *actions: str) -> set:
    return {s.key for s in seen if s.service == service and (not actions or s.action in actions)}


# --- with moto's STS ------------------------------------------------------------------------


def test_claim_reads_and_writes_the_tables_as_the_role(
    member_a: World, signed: List[Signed], aws: AwsLike
) -> None:
    w = member_a
    w.route(w.tables[0], w.b.eni)
    report = run("claim", external_id=EXTERNAL_ID)
    assert report.ok, report.errors
    assert set(w.targets().values()) == {w.a.eni}
    calls = [s for s in signed if s.service == "sts"]
    assert [c.action for c in calls] == ["AssumeRole"]  # once, for the whole claim
    assume = calls[0].params
    assert assume["RoleArn"] == ROLE and assume["ExternalId"] == EXTERNAL_ID
    assert assume["RoleSessionName"] == f"mirror-vip-{w.a.instance_id}"
    assert calls[0].key == INSTANCE_KEY  # assumed from this instance's own credentials
    role_keys = keys_of(signed, "ec2")
    assert len(role_keys) == 1 and INSTANCE_KEY not in role_keys, "every route call as the role"
    assert {s.action for s in signed if s.service == "ec2"} >= {
        "DescribeRouteTables",
        "DescribeSubnets",
        "CreateRoute",
        "ReplaceRoute",
    }


def test_status_reads_its_own_eni_as_itself_and_the_tables_as_the_role(
    member_a: World, signed: List[Signed]
) -> None:
    assert run("claim").ok
    signed.clear()
    report = run("status")
    assert report.ok and report.source_dest_check is False
    own = keys_of(signed, "ec2", "DescribeNetworkInterfaces")
    tables = keys_of(signed, "ec2", "DescribeRouteTables", "DescribeSubnets")
    assert own == {INSTANCE_KEY}
    assert len(tables) == 1 and INSTANCE_KEY not in tables


def test_release_deletes_as_the_role(member_a: World, signed: List[Signed]) -> None:
    w = member_a
    assert run("claim").ok
    signed.clear()
    report = run("release")
    assert report.ok and set(w.targets().values()) == {None}
    deletes = keys_of(signed, "ec2", "DeleteRoute")
    assert len(deletes) == 1 and INSTANCE_KEY not in deletes


def test_doctor_probes_the_writes_as_the_role(member_a: World, signed: List[Signed]) -> None:
    report = run("doctor", external_id=EXTERNAL_ID)
    checks = {c.name: c for c in report.checks}
    assert checks["assume_role"].status == "pass", checks["assume_role"]
    assert ROLE in checks["assume_role"].detail and "mirror-vip-i-" in checks["assume_role"].detail
    assert checks["permissions"].status == "pass", checks["permissions"]
    probes = [s for s in signed if s.params.get("DryRun") == "true"]
    assert {p.action for p in probes} == {"ReplaceRoute", "CreateRoute", "DeleteRoute"}
    assert {p.key for p in probes} == keys_of(signed, "ec2", "DescribeRouteTables")
    assert INSTANCE_KEY not in {p.key for p in probes}
    assert keys_of(signed, "ec2", "DescribeNetworkInterfaces") == {INSTANCE_KEY}


def test_eni_and_region_given_the_eni_is_read_as_itself(
    member_a: World, signed: List[Signed], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = member_a
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    report = run("claim", eni=w.a.eni, region=REGION)
    assert report.ok, report.errors
    assert keys_of(signed, "ec2", "DescribeNetworkInterfaces") == {INSTANCE_KEY}
    assume = next(s for s in signed if s.action == "AssumeRole").params
    assert assume["RoleSessionName"] == f"mirror-vip-{w.a.instance_id}"  # from the ENI
    assert "ExternalId" not in assume


def test_without_a_role_nothing_is_assumed(member_a: World, signed: List[Signed]) -> None:
    report = api.claim(settings.from_mapping({}))
    assert report.ok
    assert keys_of(signed, "ec2") == {INSTANCE_KEY} and keys_of(signed, "sts") == set()


def test_a_role_of_another_partition_is_refused_before_anything_is_sent(
    member_a: World, signed: List[Signed]
) -> None:
    report = run("claim", role_arn=f"arn:aws-cn:iam::{OWNER}:role/mirror-vip-routes")
    assert report.exit_code == 2 and len(report.errors) == 1
    assert "aws-cn" in report.errors[0] and "eu-west-1" in report.errors[0]
    assert [s for s in signed if s.service in ("sts", "ec2")] == []
    assert set(member_a.targets().values()) == {None}


def test_the_sts_client_uses_the_regional_endpoint_even_when_told_legacy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore before 1.40 sends eu-west-1's STS calls to sts.amazonaws.com (us-east-1) by
    default; AWS_STS_REGIONAL_ENDPOINTS=legacy asks 1.40+ for the same."""
    for key in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
    core = aws.botocore_session()
    assert core.create_client("sts", region_name="eu-west-1").meta.endpoint_url == (
        "https://sts.amazonaws.com"
    ), "the environment does ask botocore for the global endpoint"
    for region in ("eu-west-1", "us-east-1", "ap-southeast-2"):
        client = aws.sts_client(core, region, 30, aws_access_key_id="a", aws_secret_access_key="b")
        assert client.meta.endpoint_url == f"https://sts.{region}.amazonaws.com"


def test_session_names_are_valid_for_sts() -> None:
    name = assumerole.session_name
    assert name("i-0123456789abcdef0", "eni-1") == "mirror-vip-i-0123456789abcdef0"
    assert name("", "eni-0123456789abcdef0") == "mirror-vip-eni-0123456789abcdef0"
    odd = name("i-" + "x" * 80 + " /", "")
    assert len(odd) == 64 and " " not in odd and "/" not in odd


# --- with a loopback STS that refuses, stalls or throttles ---------------------------------


@dataclass
class LoopbackSts:
    url: str = ""
    answers: List[Tuple[int, str]] = field(default_factory=list)  # consumed in order, then OK
    stall: bool = False
    requests: List[dict] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


ACCESS_DENIED = (
    "User: arn:aws:sts::111111111111:assumed-role/mirror-vip-member/i-0a1b2c3d4e5f60718 is not "
    f"authorized to perform: sts:AssumeRole on resource: {ROLE}"
)


def _error(code: str, message: str) -> str:
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender'
        f"</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId>"
        "</ErrorResponse>"
    )


def _assumed(session: str) -> str:
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    return (
        '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
        f"<Credentials><AccessKeyId>{ROLE_KEY}</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
        f"<SessionToken>t</SessionToken><Expiration>{expires:%Y-%m-%dT%H:%M:%SZ}</Expiration>"
        f"</Credentials><AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:{session}</AssumedRoleId>"
        f"<Arn>arn:aws:sts::{OWNER}:assumed-role/mirror-vip-routes/{session}</Arn>"
        "</AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId>"
        "</ResponseMetadata></AssumeRoleResponse>"
    )


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackSts]:
    state = LoopbackSts()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            state.requests.append({k: v[0] for k, v in form.items()})
            if state.stall:
                state.released.wait(30)
                return
            status, body = (
                state.answers.pop(0)
                if state.answers
                else (200, _assumed(state.requests[-1]["RoleSessionName"]))
            )
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", state.url)
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


def only_error(report: Report) -> str:
    assert not report.ok and report.exit_code == 1, report.to_json()
    assert len(report.errors) == 1, report.errors
    line = report.errors[0]
    assert "\n" not in line and len(line) < 700, line
    return line


def test_access_denied_names_the_role_both_accounts_and_each_fix(
    member_a: World, sts: LoopbackSts, signed: List[Signed], aws: AwsLike
) -> None:
    sts.answers.append((403, _error("AccessDenied", ACCESS_DENIED)))
    report = run("claim", external_id=EXTERNAL_ID)
    line = only_error(report)
    for fragment in (
        ROLE,
        f"in account {OWNER}, that role's trust policy must allow sts:AssumeRole to "
        "arn:aws:iam::111111111111:role/mirror-vip-member",
        "and require sts:ExternalId equal to the external_id setting",
        f"in account 111111111111, the instance role's policy must allow sts:AssumeRole on {ROLE}",
        "docs/aws/shared-vpc-owner-trust-policy.json",
        "docs/aws/shared-vpc-workload-policy.json",
    ):
        assert fragment in line, line
    assert aws.writes == [] and set(member_a.targets().values()) == {None}
    assert len(sts.requests) == 1, "a refusal is not retried"


def test_access_denied_without_an_external_id_says_one_may_be_required(
    member_a: World, sts: LoopbackSts, signed: List[Signed]
) -> None:
    sts.answers.append((403, _error("AccessDenied", ACCESS_DENIED)))
    line = only_error(run("status"))
    assert "if it requires an sts:ExternalId, set external_id to it" in line


def test_doctor_fails_the_role_and_probes_nothing(
    member_a: World, sts: LoopbackSts, signed: List[Signed], aws: AwsLike
) -> None:
    sts.answers.append((403, _error("AccessDenied", ACCESS_DENIED)))
    report = run("doctor")
    checks = {c.name: c for c in report.checks}
    assert checks["assume_role"].status == "fail" and ROLE in checks["assume_role"].detail
    assert "permissions" not in checks and report.exit_code == 1
    # the network path's one DescribeVpcs, as the instance, before the role; nothing as the role
    assert [action for action, _ in aws.calls] == ["DescribeVpcs"]
    assert keys_of(signed, "ec2") == {INSTANCE_KEY}


def test_a_stalled_sts_is_given_up_on_by_the_deadline(
    member_a: World, sts: LoopbackSts, signed: List[Signed], aws: AwsLike
) -> None:
    sts.stall = True
    started = time.monotonic()
    report = run("claim", deadline=3)
    elapsed = time.monotonic() - started
    line = only_error(report)
    assert "AssumeRole" in line and ROLE in line and "deadline" in line, line
    assert elapsed < 3 + 5, f"took {elapsed:.1f}s against a 3s deadline"
    assert aws.writes == []


def test_throttling_is_retried_within_the_deadline(
    member_a: World, sts: LoopbackSts, signed: List[Signed]
) -> None:
    sts.answers.append((400, _error("Throttling", "Rate exceeded")))
    report = run("claim")
    assert report.ok, report.errors
    assert len(sts.requests) == 2
    assert keys_of(signed, "ec2", "CreateRoute") == {ROLE_KEY}
    assert set(member_a.targets().values()) == {member_a.a.eni}


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("RegionDisabledException", "activate it"),
        ("InvalidClientTokenId", "STS refused this instance's own credentials"),
    ],
)
def test_other_refusals_say_what_to_do(
    member_a: World, sts: LoopbackSts, signed: List[Signed], code: str, says: str
) -> None:
    sts.answers.append((403, _error(code, "no")))
    line = only_error(run("claim"))
    assert line.startswith(code) and says in line and ROLE in line, line


def test_a_refused_write_names_the_role_to_grant_it_to(
    member_a: World, signed: List[Signed], aws: AwsLike
) -> None:
    w = member_a
    aws.deny.update({("CreateRoute", w.tables[0]), ("ReplaceRoute", w.tables[0])})
    report = run("claim")
    failed = {t.id: t.error for t in report.route_tables if t.error}
    assert list(failed) == [w.tables[0]], report.to_json()
    assert f"grant it to the role {ROLE} in account {OWNER}" in str(failed[w.tables[0]])
    assert "docs/aws/shared-vpc-owner-role-policy.json" in str(failed[w.tables[0]])
    doctor = {c.name: c for c in run("doctor").checks}
    assert doctor["permissions"].status == "fail"
    assert f"grant them to the role {ROLE}" in doctor["permissions"].detail

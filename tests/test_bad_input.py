"""Bad input through `python -m mirror_vip`: one line naming the value and the fix, exit 2, no
traceback, no hang, and nothing sent.

Every case runs the CLI as a real process. IMDS, EC2 (and STS) all point at one recording
server on loopback: a refused run must not have opened a single connection to it. The first
test shows the recorder does see what a run sends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from tests.conftest import REGION, VIP

ROOT = Path(__file__).resolve().parents[1]
ENI = "eni-0123456789abcdef0"
# a claim that needs neither IMDS (eni and region given) nor the interface's addresses
CLAIM = ["claim", "--vip", VIP, "--interface", "lo", "--eni", ENI, "--region", REGION]
HANG_GUARD_S = 60  # a run that blocks is killed here and the test fails


@dataclass
class Recorder:
    url: str = ""
    connections: int = 0
    requests: List[Tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    state = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            state.requests.append((self.command, self.path))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_PUT = do_POST = _answer

    class Server(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            state.connections += 1  # counted before any byte is read: TLS attempts too
            return True

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def run_cli(
    recorder: Recorder, home: Path, argv: List[str], env: Optional[Dict[str, Optional[str]]] = None
) -> subprocess.CompletedProcess[str]:
    base: Dict[str, Optional[str]] = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "python"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": recorder.url,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": recorder.url,
    }
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mirror_vip", *argv],
        capture_output=True,
        text=True,
        env={k: v for k, v in base.items() if v is not None},
        timeout=HANG_GUARD_S,
        check=False,
    )


def assert_refused(done: subprocess.CompletedProcess[str], recorder: Recorder, *says: str) -> str:
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and len(lines[0]) < 500, done.stderr[:2000]
    for fragment in says:
        assert fragment in lines[0]
    assert recorder.connections == 0 and recorder.requests == []
    return lines[0]


def test_the_recorder_sees_what_a_run_sends(recorder: Recorder, tmp_path: Path) -> None:
    # 6 s: with 2, a loaded machine once spent the deadline before the first request
    done = run_cli(recorder, tmp_path, [*CLAIM, "--deadline", "6"])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert ("POST", "/") in recorder.requests  # the DescribeNetworkInterfaces


# --- --config --------------------------------------------------------------------------------


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


CONFIGS: Dict[str, Tuple[Callable[[Path], Path], Tuple[str, ...]]] = {
    "not-utf8": (
        lambda d: _write(d / "c.json", b'{"vip": "\xff"}'),
        ("not UTF-8", "0xff"),
    ),
    "int-4400-digits": (
        lambda d: _write(d / "c.json", b'{"deadline": ' + b"1" * 4400 + b"}"),
        ("4400 digits",),
    ),
    "one-and-400-zeros": (
        lambda d: _write(d / "c.json", b'{"deadline": 1' + b"0" * 400 + b"}"),
        ("401 digits",),
    ),
    "float-out-of-range": (
        lambda d: _write(d / "c.json", b'{"deadline": 1e400}'),
        ("1e400", "out of range"),
    ),
    "nan": (lambda d: _write(d / "c.json", b'{"deadline": NaN}'), ("NaN", "standard JSON")),
    "nested-32000": (  # 64000 bytes: under the size bound (the bridge tests take 100000)
        lambda d: _write(d / "c.json", b"[" * 32_000 + b"]" * 32_000),
        ("nested",),
    ),
    "too-large": (
        lambda d: _write(d / "c.json", b"{" + b" " * 200_000 + b"}"),
        ("larger than", "KiB"),
    ),
    "dev-zero": (lambda d: Path("/dev/zero"), ("not a regular file",)),
    "fifo": (lambda d: _fifo(d / "fifo"), ("not a regular file",)),
    "directory": (lambda d: d, ("not a regular file",)),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_bad_config_file_is_one_line_exit_2(recorder: Recorder, tmp_path: Path, case: str) -> None:
    make, says = CONFIGS[case]
    path = make(tmp_path)
    done = run_cli(recorder, tmp_path, [*CLAIM, "--config", str(path)])
    line = assert_refused(done, recorder, "--config", *says)
    assert str(path) in line


def test_bad_config_as_json_output_is_standard_json(recorder: Recorder, tmp_path: Path) -> None:
    path = _write(tmp_path / "c.json", b'{"deadline": 1' + b"0" * 400 + b"}")
    done = run_cli(recorder, tmp_path, [*CLAIM, "--json", "--config", str(path)])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    report = json.loads(done.stdout, parse_constant=_refuse_constant)
    assert report["ok"] is False and report["outcome"] == "failure"
    assert "401 digits" in report["errors"][0]
    assert recorder.connections == 0


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"not standard JSON: {name}")


def test_a_huge_argument_is_shortened(recorder: Recorder, tmp_path: Path) -> None:
    done = run_cli(recorder, tmp_path, [*CLAIM, "--route-table-tag", "k=" + "v" * 100_000])
    assert_refused(done, recorder, "route_table_tag", "100002 characters")


def test_undecodable_argument_bytes_are_refused(recorder: Recorder, tmp_path: Path) -> None:
    """A shell passes bytes; Python makes a non-UTF-8 byte a lone surrogate, which EC2 (and
    the JSON report) cannot carry."""
    done = subprocess.run(
        [sys.executable, "-m", "mirror_vip", *CLAIM, "--route-table-tag", b"k=\xff"],
        capture_output=True,
        text=True,
        env=_env(recorder, tmp_path),
        timeout=HANG_GUARD_S,
        check=False,
    )
    assert_refused(done, recorder, "route_table_tag", "UTF-8")


def _env(recorder: Recorder, home: Path) -> Dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT / "python"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": recorder.url,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": recorder.url,
    }


# --- the environment botocore reads -------------------------------------------------------


ENVIRONMENTS: Dict[str, Tuple[Callable[[Path, Recorder], Dict[str, Optional[str]]], str]] = {
    "endpoint-not-a-url": (lambda d, r: {"AWS_ENDPOINT_URL": "not a url"}, "AWS_ENDPOINT_URL"),
    "endpoint-open-ipv6": (lambda d, r: {"AWS_ENDPOINT_URL": "http://[::1"}, "AWS_ENDPOINT_URL"),
    "endpoint-ec2-percent": (
        lambda d, r: {"AWS_ENDPOINT_URL_EC2": "%%%"},
        "AWS_ENDPOINT_URL_EC2",
    ),
    "endpoint-port-out-of-range": (
        lambda d, r: {"AWS_ENDPOINT_URL": "http://127.0.0.1:99999"},
        "AWS_ENDPOINT_URL",
    ),
    "imds-open-ipv6": (
        lambda d, r: {"AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://[::1"},
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    ),
    "imds-timeout-not-a-number": (
        lambda d, r: {"AWS_METADATA_SERVICE_TIMEOUT": "soon"},
        "AWS_METADATA_SERVICE_TIMEOUT",
    ),
    "imds-mode": (
        lambda d, r: {"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "ipv5"},
        "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    ),
    "ca-bundle-fifo": (  # blocked the first HTTPS connection forever
        lambda d, r: {
            "AWS_CA_BUNDLE": str(_fifo(d / "ca-fifo")),
            "AWS_ENDPOINT_URL": r.url.replace("http:", "https:"),
        },
        "AWS_CA_BUNDLE",
    ),
    "ca-bundle-missing": (
        lambda d, r: {
            "AWS_CA_BUNDLE": str(d / "missing.pem"),
            "AWS_ENDPOINT_URL": r.url.replace("http:", "https:"),
        },
        "AWS_CA_BUNDLE",
    ),
    "web-identity-token-fifo": (  # blocked the credential fetch forever
        lambda d, r: {
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/mirror-vip",
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(_fifo(d / "token-fifo")),
        },
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ),
}


@pytest.mark.parametrize("case", sorted(ENVIRONMENTS))
def test_bad_environment_is_one_line_exit_2(recorder: Recorder, tmp_path: Path, case: str) -> None:
    make, variable = ENVIRONMENTS[case]
    env = make(tmp_path, recorder)
    done = run_cli(recorder, tmp_path, CLAIM, env)
    line = assert_refused(done, recorder, f"invalid {variable} ", "or unset it")
    assert repr(env[variable]) in line


def test_bad_environment_refuses_doctor_and_status_too(recorder: Recorder, tmp_path: Path) -> None:
    for command in ("status", "doctor", "release"):
        argv = [command, *CLAIM[1:]]
        done = run_cli(recorder, tmp_path, argv, {"AWS_ENDPOINT_URL_EC2": "%%%"})
        assert_refused(done, recorder, "invalid AWS_ENDPOINT_URL_EC2 '%%%'")

"""The drill's picture (sim.drill_plot), checked for structure, not pixels.

Two small synthetic failovers (ours: two ReplaceRoutes; the seed's: delete-then-create on two
tables, one with a route before and one without, and a DeleteRoute that failed) go through the
same figure the drill draws; the tests read the figure's artists back (by gid) and compare them
with what the Outcome says: a switch marker where each write was applied, a hatched span per
no-route window, the client's attempts in their lanes, the outage as the text prints it. The
same checks run on a real drill's outcome in tests/test_drill.py (`assert_drawn_from`).
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
from PIL import Image  # matplotlib's own dependency (requirements-dev.txt)

from sim import drill, drill_plot
from sim.client import Attempt
from sim.drill import BASELINE, OURS, PICTURE_TITLES, Outcome
from sim.fakeaws import Call

T0 = 5000.0  # the trigger, on time.monotonic()'s scale
CLIENT, OTHER, NONE = "rtb-0c11e57000000001", "rtb-0e7e0000000000002", "rtb-0a0e0000000000003"
ENI_A, ENI_B = "eni-0aaaaaaaaaaaaaaaa", "eni-0bbbbbbbbbbbbbbbb"
VIP = "192.168.255.10/32"


def call(
    seq: int, action: str, table: Optional[str], start: float, applied: float, **kw: Any
) -> Call:
    params = {"Action": action}
    if table:
        params.update(RouteTableId=table, DestinationCidrBlock=VIP)
    if action in ("CreateRoute", "ReplaceRoute"):
        params["NetworkInterfaceId"] = ENI_B
    status, code = kw.get("status", 200), kw.get("code")
    return Call(
        seq,
        action,
        params,
        T0 + start,
        end=T0 + applied + 0.001,
        applied=T0 + applied,
        status=status,
        code=code,
    )


def tries(start: float, stop: float, ok: bool, who: str = "", err: str = "") -> List[Attempt]:
    """One attempt every 10 ms in [START, STOP) (seconds from the trigger), each 2 ms long."""
    n = round((stop - start) / 0.01)
    return [
        Attempt(T0 + start + i * 0.01, T0 + start + i * 0.01 + 0.002, ok, who, err)
        for i in range(n)
    ]


def outcome(algorithm: str, calls: List[Call], attempts: List[Attempt], **kw: Any) -> Outcome:
    a_ok = [a for a in attempts if a.ok and a.who == "memberA"]
    b_ok = [a for a in attempts if a.ok and a.who == "memberB"]
    return Outcome(
        algorithm=algorithm,
        trigger=T0,
        claim_started=T0 + 0.002,
        claim_ended=T0 + kw.pop("ended"),
        exit_code=0,
        report={"outcome": "success"},
        calls=calls,
        switches=[],
        last_a=max(a_ok, key=lambda a: a.end),
        first_b=min(b_ok, key=lambda a: a.end),
        failed_attempts=sum(1 for a in attempts if not a.ok),
        client_table=CLIENT,
        attempts=attempts,
        members={ENI_A: "memberA", ENI_B: "memberB"},
        **kw,
    )


def ours() -> Outcome:
    return outcome(
        OURS,
        [
            call(1, "ReplaceRoute", CLIENT, 0.30, 0.50),
            call(2, "ReplaceRoute", OTHER, 0.30, 0.52),
            call(3, "DescribeRouteTables", None, 0.30, 0.45),
        ],
        tries(-0.10, 0.0, True, "memberA")
        + tries(0.0, 0.50, False, err="ECONNREFUSED")
        + tries(0.55, 0.80, True, "memberB"),
        ended=0.70,
        no_route={CLIENT: [], OTHER: []},
        routes_before={CLIENT: ENI_A, OTHER: ENI_A, NONE: None},
    )


def seed() -> Outcome:
    return outcome(
        BASELINE,
        [
            call(1, "DeleteRoute", NONE, 0.10, 0.20, status=400, code="InvalidRoute.NotFound"),
            call(2, "CreateRoute", NONE, 0.20, 0.30),
            call(3, "DeleteRoute", CLIENT, 0.30, 0.40),
            call(4, "CreateRoute", CLIENT, 0.40, 0.60),
            call(5, "DeleteRoute", OTHER, 0.70, 0.80),
            call(6, "CreateRoute", OTHER, 0.80, 1.00),
        ],
        tries(-0.10, 0.0, True, "memberA")
        + tries(0.0, 0.40, False, err="ECONNREFUSED")
        + tries(0.40, 0.60, False, err="timeout")
        + tries(0.62, 0.90, True, "memberB"),
        ended=1.05,
        no_route={CLIENT: [(T0 + 0.40, T0 + 0.60)], OTHER: [(T0 + 0.80, T0 + 1.00)]},
        routes_before={CLIENT: ENI_A, OTHER: ENI_A, NONE: None},
    )


# --- reading a figure back -----------------------------------------------------------------


def by_gid(ax: Any, gid: str) -> List[Any]:
    return [a for a in ax.findobj() if a.get_gid() == gid]


def x_extent(artist: Any) -> Tuple[float, float]:
    """Data x range of a span or bar: an axvspan (a Rectangle from matplotlib 3.9, a Polygon
    before) or a broken_barh collection."""
    if hasattr(artist, "get_paths"):
        xs = [v[0] for p in artist.get_paths() for v in p.vertices]
    elif hasattr(artist, "get_xy") and not hasattr(artist, "get_width"):
        xs = [v[0] for v in artist.get_xy()]
    else:
        xs = [artist.get_x(), artist.get_x() + artist.get_width()]
    return min(xs), max(xs)


def ytick(ax: Any, label_part: str) -> float:
    found = [
        pos
        for pos, label in zip(ax.get_yticks(), ax.get_yticklabels())
        if label_part in label.get_text()
    ]
    assert len(found) == 1, (label_part, [t.get_text() for t in ax.get_yticklabels()])
    return float(found[0])


def lane_of(attempt: Attempt) -> str:
    if attempt.ok:
        return f"answered {attempt.who}"
    return "timed out" if attempt.err == "timeout" else "refused or reset"


def assert_drawn_from(fig: Any, outcomes: Sequence[Outcome]) -> None:
    """FIG shows OUTCOMES as the Outcome objects say (the text's data), panel by panel."""
    axes = fig.get_axes()
    assert len(axes) == len(outcomes)
    assert len({ax.get_xlim() for ax in axes}) == 1, "panels do not share the time axis"
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes[1:])
    for ax, o in zip(axes, outcomes):
        x0, x1 = ax.get_xlim()
        assert x0 < 0 < x1
        (trigger,) = by_gid(ax, "trigger")
        assert list(trigger.get_xdata()) == [0, 0], "time 0 is when member A stops"
        assert ax.get_title(loc="left").startswith(PICTURE_TITLES[o.algorithm])
        assert f"{o.failed_attempts} connections failed" in ax.get_title(loc="left")
        landed: Dict[str, List[float]] = {}
        for c in o.calls:
            if c.action in ("CreateRoute", "ReplaceRoute", "DeleteRoute") and c.code is None:
                assert c.table and c.applied
                landed.setdefault(c.table, []).append(c.applied - o.trigger)
        for table, xs in landed.items():
            (marker,) = by_gid(ax, f"switch {table}")
            assert sorted(marker.get_xdata()) == pytest.approx(sorted(xs), abs=1e-9)
            assert set(marker.get_ydata()) == {ytick(ax, drill_plot.short(table))}
        markers = [a for a in ax.findobj() if str(a.get_gid()).startswith("switch ")]
        assert len(markers) == len(landed), "a marker for a write that did not land"
        windows = [(t, s, e) for t, spans in o.no_route.items() for s, e in spans]
        spans = [a for a in ax.findobj() if str(a.get_gid()).startswith("no-route ")]
        assert len(spans) == len(windows)
        for table, start, end in windows:
            (span,) = by_gid(ax, f"no-route {table}")
            assert end is not None
            assert x_extent(span) == pytest.approx((start - o.trigger, end - o.trigger), abs=1e-9)
        client = [(s, e) for t, s, e in windows if t == o.client_table]
        shaded = by_gid(ax, "client-no-route")
        assert len(shaded) == len(client)
        for artist, (start, end) in zip(shaded, client):
            assert end is not None
            assert x_extent(artist) == pytest.approx((start - o.trigger, end - o.trigger), abs=1e-9)
        for lane in ("answered memberA", "answered memberB", "refused or reset", "timed out"):
            expected = [a.start - o.trigger for a in o.attempts if lane_of(a) == lane]
            ticks = by_gid(ax, lane)
            if not expected:
                assert not ticks, lane
                continue
            (events,) = ticks
            assert sorted(events.get_positions()) == pytest.approx(sorted(expected), abs=1e-9)
        texts = [t.get_text() for t in ax.findobj() if hasattr(t, "get_text")]
        assert f"outage {drill._ms(o.outage)}" in texts, "the outage differs from the text's"


# --- the synthetic failovers -------------------------------------------------------------------


def test_the_figure_shows_each_failover_as_its_outcome_says() -> None:
    outcomes = [ours(), seed()]
    fig = drill_plot.figure(outcomes, PICTURE_TITLES)
    assert_drawn_from(fig, outcomes)
    top, bottom = fig.get_axes()
    assert not [a for a in top.findobj() if str(a.get_gid()).startswith("no-route")]
    assert list(by_gid(top, f"switch {CLIENT}")[0].get_xdata()) == pytest.approx([0.50])
    assert list(by_gid(bottom, f"switch {CLIENT}")[0].get_xdata()) == pytest.approx([0.40, 0.60])
    assert list(by_gid(bottom, f"switch {NONE}")[0].get_xdata()) == pytest.approx([0.30])
    assert x_extent(by_gid(bottom, "client-no-route")[0]) == pytest.approx((0.40, 0.60))
    assert len(by_gid(bottom, "timed out")[0].get_positions()) == 20
    labels = [t.get_text() for t in bottom.get_yticklabels()]
    assert labels[5:] == ["rtb-0c11e5 (client's)", "rtb-0e7e00", "rtb-0a0e00 (had none)"]
    assert "rtb-0a0e00 (had none)" not in [t.get_text() for t in top.get_yticklabels()]
    texts = {t.get_text() for t in fig.findobj() if hasattr(t, "get_text")}
    assert {"outage 560 ms", "outage 630 ms"} <= texts
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {
        "route → memberA",
        "route → memberB",
        "no route",
        "write applied",
    }
    assert bottom.get_xlabel() == "time since memberA's service stopped (s)"


def test_the_png_has_the_size_the_readme_shows(tmp_path: Path) -> None:
    path = tmp_path / "drill.png"
    drill_plot.write([ours(), seed()], PICTURE_TITLES, str(path))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == drill_plot.size_px(2) == (960, 720)


def test_the_drill_draws_its_outcomes_after_the_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "drill.png"
    monkeypatch.setattr(drill, "unavailable_reason", lambda: None)
    monkeypatch.setattr(drill, "run_netns", lambda opts: [ours(), seed()])
    assert drill.main(["--picture", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"picture: {path} (this run's timeline; every run in namespaces redraws it)"]
    with Image.open(path) as image:
        assert image.size == (960, 720)


def test_a_failed_claim_keeps_its_exit_code_with_a_picture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = ours()
    failed.exit_code = 1
    monkeypatch.setattr(drill, "unavailable_reason", lambda: None)
    monkeypatch.setattr(drill, "run_netns", lambda opts: [failed, seed()])
    assert drill.main(["--picture", str(tmp_path / "drill.png")]) == 1
    assert (tmp_path / "drill.png").exists()


def test_without_matplotlib_the_drill_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    out = io.StringIO()
    assert drill.draw([ours()], str(tmp_path / "drill.png"), out) is None
    assert out.getvalue().splitlines() == [
        "picture: not drawn (matplotlib is not installed: pip install -r requirements-dev.txt)"
    ]
    assert not (tmp_path / "drill.png").exists()


def test_an_unwritable_picture_path_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    out = io.StringIO()
    path = tmp_path / "missing-dir" / "drill.png"
    assert drill.draw([ours()], str(path), out) is None
    (line,) = out.getvalue().splitlines()
    assert line.startswith(f"picture: not written to {path} (")


def test_the_readme_shows_the_committed_picture_after_the_drill_text() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The drill\n", 1)[1].split("\n## ", 1)[0]
    assert section.index("side by side") < section.index("](docs/drill.png)")
    assert "regenerated" in section or "redraws `docs/drill.png`" in section
    with Image.open(root / "docs" / "drill.png") as image:
        assert (image.format, image.size) == ("PNG", drill_plot.size_px(2))

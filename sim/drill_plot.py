"""The drill as a picture: docs/drill.png, written by every `make demo` (sim.drill).

One panel per failover (ours above the seed article's delete-then-create), sharing one time
axis that starts when member A's service stops. In each panel, from the top:

- the client's connection attempts, one tick at each attempt's start, in a lane by how it
  ended: answered by member A, refused or reset, timed out, answered by member B;
- the claim process on member B (light) and its EC2 calls in flight (dark);
- one lane per route table: where its VIP route points, each write marked where the fake AWS
  applied it, and each no-route window hatched; a window in the client's table (the one the
  router follows) is also shaded across the panel;
- the outage (last answer from A to first answer from B, as the text reports it) as an arrow.

Everything comes from the drill's Outcome objects, the same data the text is printed from.
Lanes, not colours alone, say what a tick is, so the picture survives greyscale; the colours
are from the Okabe-Ito set, which stays distinct under the common colour-blindnesses.

matplotlib is imported here only (sim.drill imports this module lazily), through its
object-oriented API: no pyplot, no global backend switch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .client import Attempt
    from .drill import Outcome

# 960 px wide: the README shows it at (nearly) its own size; 9-11 pt text stays readable
WIDTH_PX, PANEL_PX, FRAME_PX, DPI = 960, 320, 80, 100  # two panels: 960 x 720
FONT_PT = 10
BEFORE_S = 0.15  # how much of the steady state before the failover is shown
AFTER_S = 0.25  # and after the last thing that happened
CLIENT_NOTE_S = 0.3  # room after the client's last attempt for the words "client stopped"

# Okabe-Ito: distinct for deuteranopia/protanopia/tritanopia, different in lightness too
MEMBER_A = "#0072B2"  # blue
MEMBER_B = "#009E73"  # bluish green
FAILED = "#D55E00"  # vermillion
OTHER = "#CC79A7"  # reddish purple: a route to neither member
CLAIM = "#D9D9D9"
CALL = "#4D4D4D"

REFUSED, TIMED_OUT = "refused or reset", "timed out"


@dataclass
class Lanes:
    """Y positions (top = 0) and labels of one panel's lanes."""

    answered_a: float
    refused: float
    timed_out: float
    answered_b: float
    claim: float
    tables: Dict[str, float]

    def labels(self, client_table: str, had_route: Dict[str, bool]) -> List[Tuple[float, str]]:
        rows = [
            (self.answered_a, "answered by memberA"),
            (self.refused, REFUSED),
            (self.timed_out, TIMED_OUT),
            (self.answered_b, "answered by memberB"),
            (self.claim, "claim on memberB"),
        ]
        for table, y in self.tables.items():
            note = " (client's)" if table == client_table else ""
            if not had_route.get(table, True):
                note += " (had none)"
            rows.append((y, f"{short(table)}{note}"))
        return rows


def short(resource: str) -> str:
    head, _, tail = resource.partition("-")
    return f"{head}-{tail[:6]}" if tail else resource


def tables_of(outcome: Outcome) -> List[str]:
    """Tables with a VIP route before, or that a write landed on: the client's table first,
    the tables that had no VIP route last."""
    landed = {c.table for c in outcome.calls if c.landed and c.table}
    tables = {t for t, target in outcome.routes_before.items() if target} | landed
    return sorted(
        tables,
        key=lambda t: (t != outcome.client_table, not outcome.routes_before.get(t), t),
    )


def lanes_for(outcome: Outcome) -> Lanes:
    tables = tables_of(outcome)
    return Lanes(0, 1, 2, 3, 4.3, {t: 5.6 + i for i, t in enumerate(tables)})


def time_span(outcomes: Sequence[Outcome]) -> Tuple[float, float]:
    """The shared x range, in seconds from each outcome's trigger: up to the last thing that
    happened, and far enough to say where the client stopped (else it looks as if member B
    stopped answering)."""
    last = 0.0
    for o in outcomes:
        moments = [o.claim_ended + AFTER_S]
        moments += [c.end + AFTER_S for c in o.calls]
        moments += [o.first_b.end + AFTER_S] if o.first_b else []
        moments += [max(a.start for a in o.attempts) + CLIENT_NOTE_S] if o.attempts else []
        last = max(last, max(moments) - o.trigger)
    return -BEFORE_S, last


def history(outcome: Outcome, table: str) -> List[Tuple[float, Optional[str]]]:
    """(applied, target or None) for each write that landed on TABLE, in order."""
    landed = [c for c in outcome.calls if c.landed and c.table == table]
    landed.sort(key=lambda c: c.applied or 0.0)
    return [(c.applied or 0.0, None if c.action == "DeleteRoute" else c.target) for c in landed]


def outage_from(outcome: Outcome) -> float:
    """Where the text's outage starts: the last answer from A (or the trigger)."""
    return outcome.last_a.end if outcome.last_a else outcome.trigger


def size_px(panels: int) -> Tuple[int, int]:
    """The picture's size in pixels for PANELS panels (the legend and time axis in the frame)."""
    return WIDTH_PX, FRAME_PX + PANEL_PX * panels


def figure(outcomes: Sequence[Outcome], titles: Dict[str, str]) -> Figure:
    """The timeline figure: one panel per outcome, in order, sharing the time axis."""
    from matplotlib.figure import Figure

    width, height = size_px(len(outcomes))
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    ratios = [len(lanes_for(o).tables) + 5.5 for o in outcomes]
    axes = fig.subplots(len(outcomes), 1, sharex=True, height_ratios=ratios, squeeze=False)[:, 0]
    x0, x1 = time_span(outcomes)
    for ax, outcome in zip(axes, outcomes):
        panel(ax, outcome, titles.get(outcome.algorithm, outcome.algorithm), (x0, x1))
    axes[-1].set_xlabel("time since memberA's service stopped (s)", fontsize=FONT_PT)
    legend(fig)
    return fig


def panel(ax: Axes, outcome: Outcome, title: str, xlim: Tuple[float, float]) -> None:
    from matplotlib.ticker import MultipleLocator

    lanes = lanes_for(outcome)
    x0, x1 = xlim
    ax.set_xlim(x0, x1)
    ax.set_title(
        f"{title}: {outcome.failed_attempts} connections failed",
        fontsize=FONT_PT + 1,
        loc="left",
        fontweight="bold",
    )
    ax.axvline(0, color="black", linestyle="--", linewidth=1, gid="trigger")
    attempts(ax, outcome, lanes)
    claim(ax, outcome, lanes)
    for table, y in lanes.tables.items():
        route_lane(ax, outcome, table, y, x1)
    outage(ax, outcome)
    had = {t: bool(outcome.routes_before.get(t)) for t in lanes.tables}
    rows = lanes.labels(outcome.client_table, had)
    ax.set_yticks([y for y, _ in rows], [text for _, text in rows], fontsize=FONT_PT)
    ax.set_ylim(max(y for y, _ in rows) + 0.7, -1.6)
    ax.tick_params(axis="x", labelsize=FONT_PT, labelbottom=True)
    ax.tick_params(axis="y", length=0)
    ax.xaxis.set_minor_locator(MultipleLocator(0.1))
    ax.grid(True, axis="x", which="major", alpha=0.35)
    ax.grid(True, axis="x", which="minor", alpha=0.12)
    ax.axhline((lanes.answered_b + lanes.claim) / 2, color="grey", linewidth=0.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def outcome_of(attempt: Attempt) -> str:
    """The lane an attempt goes in: who answered, or how it failed."""
    if attempt.ok:
        return f"answered {attempt.who}"
    return TIMED_OUT if attempt.err == "timeout" else REFUSED


def attempts(ax: Axes, outcome: Outcome, lanes: Lanes) -> None:
    t0 = outcome.trigger
    groups: Dict[str, Tuple[float, str, List[float]]] = {
        "answered memberA": (lanes.answered_a, MEMBER_A, []),
        "answered memberB": (lanes.answered_b, MEMBER_B, []),
        REFUSED: (lanes.refused, FAILED, []),
        TIMED_OUT: (lanes.timed_out, FAILED, []),
    }
    for a in outcome.attempts:
        key = outcome_of(a)
        if key in groups:
            groups[key][2].append(a.start - t0)
    for key, (y, color, xs) in groups.items():
        if xs:
            ax.eventplot(xs, lineoffsets=y, linelengths=0.7, colors=color, linewidths=0.8, gid=key)
    last = max((a.start - t0 for a in outcome.attempts), default=None)
    if last is not None:
        ax.annotate(
            "client stopped",
            (last, lanes.answered_b),
            xytext=(5, 0),
            textcoords="offset points",
            va="center",
            fontsize=FONT_PT - 1,
            color="dimgrey",
            fontstyle="italic",
        )


def claim(ax: Axes, outcome: Outcome, lanes: Lanes) -> None:
    t0, y = outcome.trigger, lanes.claim
    ax.broken_barh(
        [(outcome.claim_started - t0, outcome.claim_ended - outcome.claim_started)],
        (y - 0.3, 0.6),
        facecolors=CLAIM,
        gid="claim",
    )
    calls = [(c.start - t0, c.end - c.start) for c in outcome.calls]
    if calls:
        ax.broken_barh(calls, (y - 0.18, 0.36), facecolors=CALL, gid="ec2-calls")
    ax.annotate(
        f"exit {outcome.exit_code}",
        (outcome.claim_ended - t0, y),
        xytext=(4, 0),
        textcoords="offset points",
        va="center",
        fontsize=FONT_PT - 1,
    )


def route_lane(ax: Axes, outcome: Outcome, table: str, y: float, x_end: float) -> None:
    """TABLE's VIP route over time: a bar per target, a marker per write landed, and each
    no-route window (from the Outcome, as the text reports it) hatched."""
    t0 = outcome.trigger
    state: Optional[str] = outcome.routes_before.get(table)
    since = -BEFORE_S
    changes = history(outcome, table)
    for at, target in [*[(at - t0, tg) for at, tg in changes], (x_end, None)]:
        if state is not None and at > since:
            name = outcome.members.get(state, short(state))
            color = {"memberA": MEMBER_A, "memberB": MEMBER_B}.get(name, OTHER)
            ax.broken_barh([(since, at - since)], (y - 0.3, 0.6), facecolors=color)
            if at - since > 0.3:  # room for the label
                ax.annotate(
                    f"→ {name}",
                    (since, y),
                    xytext=(7, 0),
                    textcoords="offset points",
                    va="center",
                    color="white",
                    fontsize=FONT_PT - 1,
                    fontweight="bold",
                    annotation_clip=True,
                )
        since, state = at, target
    xs = [at - t0 for at, _ in changes]
    if xs:
        ax.plot(
            xs,
            [y] * len(xs),
            linestyle="none",
            marker="D",
            markersize=5,
            color="black",
            gid=f"switch {table}",
        )
    for start, end in outcome.no_route.get(table, []):
        stop = (end - t0) if end is not None else x_end
        ax.broken_barh(
            [(start - t0, stop - (start - t0))],
            (y - 0.3, 0.6),
            facecolors="white",
            edgecolors=FAILED,
            hatch="////",
            linewidth=1,
            gid=f"no-route {table}",
        )
        if table == outcome.client_table:
            ax.axvspan(
                start - t0, stop, color=FAILED, alpha=0.12, linewidth=0, gid="client-no-route"
            )


def outage(ax: Axes, outcome: Outcome) -> None:
    t0 = outcome.trigger
    start = outage_from(outcome) - t0
    if outcome.first_b is None:
        ax.annotate(
            "no answer from memberB",
            (start, -0.85),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=FONT_PT,
            color=FAILED,
        )
        return
    end = outcome.first_b.end - t0
    ax.annotate(
        "",
        (start, -0.85),
        (end, -0.85),
        arrowprops={"arrowstyle": "<->", "color": "black", "linewidth": 1.2},
        gid="outage",
    )
    ax.annotate(
        f"outage {(end - start) * 1000:.0f} ms",
        ((start + end) / 2, -0.85),
        xytext=(0, 3),
        textcoords="offset points",
        va="bottom",
        ha="center",
        fontsize=FONT_PT,
        fontweight="bold",
    )


def legend(fig: Figure) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [  # matplotlib fills a legend column by column: two rows, read across
        Patch(facecolor=MEMBER_A, label="route → memberA"),
        Line2D([], [], linestyle="none", marker="D", color="black", label="write applied"),
        Patch(facecolor=MEMBER_B, label="route → memberB"),
        Patch(facecolor=CLAIM, label="claim process"),
        Patch(facecolor="white", edgecolor=FAILED, hatch="////", label="no route"),
        Patch(facecolor=CALL, label="EC2 call in flight"),
        Patch(facecolor=FAILED, alpha=0.12, label="no route in the client's table"),
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=4,
        fontsize=FONT_PT - 1,
        frameon=False,
        handlelength=1.4,
        columnspacing=1.2,
    )


def write(outcomes: Sequence[Outcome], titles: Dict[str, str], path: str) -> str:
    """Draw OUTCOMES and save the PNG at PATH (size_px(len(OUTCOMES)))."""
    fig = figure(outcomes, titles)
    fig.savefig(path, dpi=DPI)
    return path


def shown(path: str) -> str:
    """PATH as the user would type it here: relative below the working directory."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def save(outcomes: Sequence[Outcome], titles: Dict[str, str], path: str, out: Any) -> Optional[str]:
    """write(), saying in one line on OUT where the picture went, or why there is none: the
    drill's exit code never depends on its picture."""
    where = shown(path)
    try:
        import matplotlib  # noqa: F401 - only to know it is there
    except ImportError:
        print(
            "picture: not drawn (matplotlib is not installed: pip install -r requirements-dev.txt)",
            file=out,
        )
        return None
    try:
        write(outcomes, titles, path)
    except OSError as exc:
        print(f"picture: not written to {where} ({exc.strerror or exc})", file=out)
        return None
    print(f"picture: {where} (this run's timeline; every run in namespaces redraws it)", file=out)
    return path

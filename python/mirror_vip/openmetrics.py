"""A status report as OpenMetrics text: `python -m mirror_vip status --openmetrics`.

For hosts that run the command line outside IRIS, through node_exporter's textfile collector:
the same names and labels as IRIS's MirrorVip.Metrics (metrics.py), of the families the
command line can know (`Family.cli`): where each route table sends the VIP, when that was read,
whether the VIP is on the interface. A status that could not read the tables has no samples
for them, so a stale or failing status shows as absent series, never as a 0 it did not read.

Written here rather than with prometheus_client: the package installs into every IRIS
instance's mgr/python with boto3 as its only dependency. The tests parse the output with
prometheus_client's OpenMetrics parser. Every family here is a gauge, whose OpenMetrics and
Prometheus text forms are the same lines (the textfile collector reads the latter, to which
`# UNIT` and `# EOF` are comments).
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Tuple

from .metrics import BY_NAME, FAMILIES, Family, observe
from .report import Report

Sample = Tuple[Dict[str, str], float]


def render(report: Report, now: Optional[float] = None) -> str:
    """The exposition of REPORT (a status), ending in `# EOF`."""
    seen = observe(report)
    samples: Dict[str, List[Sample]] = {f.name: [] for f in FAMILIES if f.cli}
    routes = seen["routes"]
    for table_id, here in routes.items():
        samples["vip_routed_here"].append(({"id": table_id}, here))
    if routes:
        read_at = time.time() if now is None else now
        samples["route_tables_read_timestamp_seconds"].append(({}, round(read_at, 3)))
    if seen["vip_on_interface"] is not None:
        samples["vip_on_interface"].append(({}, seen["vip_on_interface"]))
    return exposition(samples)


def exposition(samples: Dict[str, List[Sample]]) -> str:
    """SAMPLES, by family name (metrics.FAMILIES, without the prefix), as OpenMetrics text."""
    lines: List[str] = []
    for name, found in samples.items():
        lines += _family(BY_NAME[name], found)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _family(family: Family, samples: List[Sample]) -> List[str]:
    lines = [
        f"# TYPE {family.full_name} {family.type}",
        f"# HELP {family.full_name} {_escape(family.help, help_text=True)}",
    ]
    if family.unit:
        lines.append(f"# UNIT {family.full_name} {family.unit}")
    for labels, value in samples:
        shown = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        name = f"{family.full_name}_total" if family.type == "counter" else family.full_name
        lines.append(f"{name}{{{shown}}} {_number(value)}" if shown else f"{name} {_number(value)}")
    return lines


def _escape(text: str, help_text: bool = False) -> str:
    """OpenMetrics escapes backslash and newline in HELP, and also the double quote in a
    label value."""
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text if help_text else text.replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))

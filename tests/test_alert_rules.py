"""The runbook's monitoring section and its example Prometheus rules say what the code does.

promtool is not available here: the rule file is checked as YAML of Prometheus's rule-file
shape, every metric an expression names is one the code emits (mirror_vip.metrics, the names
MirrorVip.Metrics and `status --openmetrics` use), and the alerts the runbook promises exist.
The severity 2 lines the runbook lists are lines the code writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

from mirror_vip import metrics, routines

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "docs/prometheus/mirror-vip-alerts.yaml"
RUNBOOK = ROOT / "docs/operations.md"
SAMPLES = {f"{metrics.PREFIX}_{f.sample_name}" for f in metrics.FAMILIES}


def rules() -> List[Dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (group,) = data["groups"]
    assert group["name"] == "mirror-vip"
    return list(group["rules"])


def section() -> str:
    text = RUNBOOK.read_text(encoding="utf-8")
    start = text.index("## 15. Monitoring")
    return text[start : text.index("\n## ", start + 1)]


def test_every_rule_has_prometheus_rule_shape() -> None:
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_every_metric_a_rule_reads_is_emitted(rule: Dict[str, Any]) -> None:
    named = set(re.findall(r"\bmirrorvip_\w+", rule["expr"]))
    assert named and named <= SAMPLES, named - SAMPLES
    labels = re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"])
    for group in labels:
        assert {x.strip() for x in group.split(",")} <= {"id", "instance"}, group
    for text in rule["annotations"].values():
        assert set(re.findall(r"\$labels\.(\w+)", text)) <= {"id", "instance"}


def test_the_alerts_the_issue_asks_for_exist() -> None:
    by_name = {r["alert"]: r["expr"] for r in rules()}
    assert "mirrorvip_member_primary == 1" in by_name["MirrorVipNotRoutedToPrimary"]
    assert "mirrorvip_vip_routed_here == 0" in by_name["MirrorVipNotRoutedToPrimary"]
    assert "mirrorvip_failover_last_success == 0" in by_name["MirrorVipFailoverClaimFailed"]
    assert "mirrorvip_reconcile_repairs_total" in by_name["MirrorVipDriftRepaired"]
    for name in by_name:
        assert f"`{name}`" in section(), f"the runbook names {name}"


def test_the_runbook_lists_every_metric_and_no_other() -> None:
    listed = set(re.findall(r"`(mirrorvip_\w+)", section()))
    assert {f"{metrics.PREFIX}_{f.sample_name}" for f in metrics.FAMILIES} <= listed
    assert listed <= SAMPLES
    cli = {f"{metrics.PREFIX}_{f.sample_name}" for f in metrics.FAMILIES if f.cli}
    for row in section().splitlines():
        name = re.match(r"\| `(mirrorvip_\w+)", row)
        if name:
            assert row.rstrip().endswith("| yes |" if name.group(1) in cli else "| no |"), row


def _code() -> str:
    return "".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.cls"))


def test_the_severity_2_lines_listed_are_written_by_the_code() -> None:
    code = _code()
    table = section()[: section().index("### Metrics")]
    assert 'did not run: "_' in code and "did not run: " in table
    assert '" claim did not start within "' in code and "claim did not start within" in table
    assert '"hook failed: "_' in code and "`mirror-vip: hook failed: ...`" in table
    hook = routines.install("", routines.SPECS["ZMIRROR"], "USER")
    assert "the NotifyBecomePrimary^ZMIRROR hook failed: " in hook
    assert "the NotifyBecomePrimary^ZMIRROR hook failed: " in table
    # the severity of a claim's line: 2 for a failure, as the runbook says
    assert '$case(report.outcome, "success": 0, "partial": 1, : 2)' in code

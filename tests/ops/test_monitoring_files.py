"""The Grafana dashboard and the alert rules name only metrics the provider exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def exported_names() -> set[str]:
    """Every metric family named in idp/core/metrics.py and the gauges registered elsewhere."""
    names = set()
    for path in (ROOT / "idp").rglob("*.py"):
        names |= set(re.findall(r'"(idp_[a-z_]+)"', path.read_text()))
    return names


def referenced(expr: str) -> set[str]:
    found = set(re.findall(r"\b(idp_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in found}


def test_alert_rules_parse_and_name_exported_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 5
    names = set().union(*(referenced(e) for e in exprs))
    assert names and names <= exported_names(), names - exported_names()


def test_dashboard_parses_and_names_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana" / "idp-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    names = set().union(*(referenced(e) for e in exprs))
    assert names and names <= exported_names(), names - exported_names()

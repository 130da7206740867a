"""Reading PromQL and Grafana dashboards without a Prometheus: the metric names an expression
uses, and every query of a dashboard. promtool checks that the expressions parse; this module
only finds what they refer to."""

from __future__ import annotations

import json
import re

KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
    "offset", "inf", "nan", "atan2", "start", "end",
}  # fmt: skip
# Series Prometheus makes itself: no service exports them.
SYNTHETIC = re.compile(r"^(up|ALERTS|ALERTS_FOR_STATE|scrape_\w+|prometheus_\w+|go_\w+|process_\w+)$")
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])")
_NUMBER_UNIT = re.compile(r"\b\d+(\.\d+)?(ms|s|m|h|d|w|y)\b")
# Grafana's built-in variables, replaced by a value Prometheus accepts.
GRAFANA_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and label names left out)."""
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    text = _NUMBER_UNIT.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(1)
        after = text[match.end() :].lstrip()
        if after.startswith("(") or name.lower() in KEYWORDS:
            continue
        names.add(name)
    # A selector written {__name__="..."} names its metric in a matcher.
    names |= set(re.findall(r'__name__\s*=\s*"([A-Za-z_:][A-Za-z0-9_:]*)"', expression))
    return names


def used_metrics(expressions: list[str], recorded: set[str]) -> set[str]:
    """Metric names the expressions need a service to export: recorded series and the ones
    Prometheus makes itself left out."""
    names = set().union(*(metric_names(e) for e in expressions)) if expressions else set()
    return {name for name in names if name not in recorded and not SYNTHETIC.match(name)}


def exported_names(name: str, exported: set[str]) -> bool:
    """Whether ``name`` is among the exported sample or family names."""
    return name in exported


def substitute_variables(expression: str, values: dict[str, str]) -> str:
    """Grafana's ``$var``, ``${var}`` and ``[[var]]`` replaced: built-ins by values Prometheus
    accepts, the dashboard's own by their current value (else ``.*``, inside a matcher)."""

    def value(name: str) -> str:
        return GRAFANA_VARIABLES.get(name) or values.get(name) or ".*"

    expression = re.sub(r"\$\{(\w+)(?::\w+)?\}", lambda m: value(m.group(1)), expression)
    expression = re.sub(r"\[\[(\w+)\]\]", lambda m: value(m.group(1)), expression)
    return re.sub(r"\$(\w+)", lambda m: value(m.group(1)), expression)


def dashboard_queries(document: object) -> list[tuple[str, str]]:
    """(panel title, expression) of every Prometheus query of a dashboard, nested rows included."""
    found: list[tuple[str, str]] = []
    variables = {}
    if isinstance(document, dict):
        for variable in (document.get("templating") or {}).get("list") or []:
            if isinstance(variable, dict) and variable.get("name"):
                current = (variable.get("current") or {}).get("value")
                variables[str(variable["name"])] = current if isinstance(current, str) else ""

    def walk(panels: object) -> None:
        for panel in panels if isinstance(panels, list) else []:
            if not isinstance(panel, dict):
                continue
            for target in panel.get("targets") or []:
                if isinstance(target, dict) and isinstance(target.get("expr"), str) and target["expr"].strip():
                    title = str(panel.get("title") or f"panel {panel.get('id', '?')}")
                    found.append((title, substitute_variables(target["expr"], variables)))
            walk(panel.get("panels"))

    if isinstance(document, dict):
        walk(document.get("panels"))
        for row in document.get("rows") or []:  # the old (schema < 16) layout
            if isinstance(row, dict):
                walk(row.get("panels"))
    return found


def as_recording_rules(queries: list[tuple[str, str]]) -> str:
    """The queries as a rule file, so that ``promtool check rules`` parses each one."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": expression} for index, (_, expression) in enumerate(queries)
    ]
    return json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules}]})  # JSON is YAML

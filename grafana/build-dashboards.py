#!/usr/bin/env python3
"""Generates the Grafana dashboards in grafana/dashboards/ (dashboards as code).

    python3 grafana/build-dashboards.py

The JSON files are committed; tests/observability.rs checks that every metric
and label their queries use exists on a running proxy, and evaluates every
query against a real Prometheus.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
INST = 'instance=~"$instance"'


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def panel(pid, title, targets, x, y, w=12, h=8, unit="short", kind="timeseries", description="", **extra):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(ord("A") + i)) for i, (e, l) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi"}},
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value", "graphMode": "none"}
    p.update(extra)
    return p


def variables(route_multi):
    return {
        "list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus", "current": {}, "hide": 0},
            {
                "name": "instance", "label": "Instance", "type": "query", "datasource": DS,
                "query": {"query": "label_values(strangler_config_version, instance)", "refId": "instance"},
                "definition": "label_values(strangler_config_version, instance)",
                "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"}, "sort": 1,
            },
            {
                "name": "route", "label": "Route", "type": "query", "datasource": DS,
                "query": {"query": f"label_values(strangler_canary_percent{{{INST}}}, route)", "refId": "route"},
                "definition": f"label_values(strangler_canary_percent{{{INST}}}, route)",
                "refresh": 2, "multi": route_multi, "includeAll": route_multi, "allValue": ".*", "sort": 1,
                **({"current": {"text": "All", "value": "$__all"}} if route_multi else {}),
            },
        ]
    }


ANNOTATIONS = {
    "list": [
        {
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        },
        {
            "name": "Rollbacks", "datasource": DS, "enable": True, "iconColor": "red",
            "expr": f'sum by (route, trigger) (changes(strangler_rollbacks_total{{{INST}, route=~"$route"}}[2m])) > 0',
            "step": "60s", "titleFormat": "rollback of {{route}} ({{trigger}})", "tagKeys": "route,trigger", "textFormat": "",
        },
    ]
}


def dashboard(uid, title, description, panels, route_multi, links):
    return {
        "uid": uid, "title": title, "description": description, "tags": ["strangler"],
        "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "",
        "templating": variables(route_multi), "annotations": ANNOTATIONS, "links": links, "panels": panels,
    }


def req(sel):
    return f"strangler_requests_total{{{INST}, {sel}}}"


def quantile(q, side, by="route"):
    return (f"histogram_quantile({q}, sum by ({by}, le) (rate(strangler_request_duration_seconds_bucket"
            f'{{{INST}, route=~"$route", side="{side}"}}[{RATE}])))')


def error_ratio(side):
    errors = req('route=~"$route", side="' + side + '", status_class="5xx"')
    everything = req('route=~"$route", side="' + side + '"')
    return f"sum by (route) (rate({errors}[{RATE}])) / sum by (route) (rate({everything}[{RATE}]))"


def migration():
    on_new = req('route=~"$route", route!="default", side="new"')
    on_all = req('route=~"$route", route!="default"')
    share = f"sum by (route) (rate({on_new}[{RATE}])) / sum by (route) (rate({on_all}[{RATE}]))"
    diffs = lambda v: (f'sum by (route) (rate(strangler_shadow_diffs_total{{{INST}, route=~"$route", verdict="{v}"}}[{RATE}]))'
                       f' / sum by (route) (rate(strangler_shadow_diffs_total{{{INST}, route=~"$route"}}[{RATE}]))')
    panels = [
        panel(1, "Share of traffic on new", [(share, "{{route}}")], 0, 0, unit="percentunit",
              description="Requests answered by the new side over all requests of the route."),
        panel(2, "Canary percent", [(f'max by (route) (strangler_canary_percent{{{INST}, route=~"$route"}})', "{{route}}")], 12, 0, unit="percent",
              description="The configured share; tenant pins and sticky keys make the real share differ a little."),
        panel(3, "5xx rate, legacy vs new", [(error_ratio("legacy"), "{{route}} legacy"), (error_ratio("new"), "{{route}} new")], 0, 8, unit="percentunit"),
        panel(4, "p99 latency, legacy vs new", [(quantile(0.99, "legacy"), "{{route}} legacy"), (quantile(0.99, "new"), "{{route}} new")], 12, 8, unit="s"),
        panel(5, "p50 latency, legacy vs new", [(quantile(0.5, "legacy"), "{{route}} legacy"), (quantile(0.5, "new"), "{{route}} new")], 0, 16, unit="s"),
        panel(6, "Shadow diff rate: real vs noise", [(diffs("diff"), "{{route}} real"), (diffs("noise"), "{{route}} noise")], 12, 16, unit="percentunit",
              description="Compared shadow pairs with a real difference, and with only noise."),
        panel(7, "Shadow drops by reason",
              [(f'sum by (route, reason) (rate(strangler_shadow_dropped_total{{{INST}, route=~"$route"}}[{RATE}]))', "{{route}} {{reason}}")],
              0, 24, unit="reqps", description="Copies or diffs not made or not stored: queue_full, too_large, method, store."),
        panel(8, "Shadow copies by outcome",
              [(f'sum by (route, outcome) (rate(strangler_shadow_requests_total{{{INST}, route=~"$route"}}[{RATE}]))', "{{route}} {{outcome}}")],
              12, 24, unit="reqps"),
        panel(9, "Config version", [(f"max by (instance) (strangler_config_version{{{INST}}})", "{{instance}}")], 0, 32, w=6, unit="none", kind="stat"),
        panel(10, "Config reloads",
              [(f"sum by (result) (increase(strangler_config_reloads_total{{{INST}}}[$__range]))", "{{result}}")],
              6, 32, w=6, unit="short", kind="stat"),
        panel(11, "Rollbacks (manual and automatic)",
              [(f'sum by (route, trigger) (increase(strangler_rollbacks_total{{{INST}, route=~"$route"}}[{RATE}]))', "{{route}} {{trigger}}")],
              12, 32, unit="short"),
        panel(12, "Requests by route and side",
              [("sum by (route, side) (rate(" + req('route=~"$route"') + f"[{RATE}]))", "{{route}} {{side}}")], 0, 40, w=24, unit="reqps"),
    ]
    links = [{"title": "Route details", "type": "dashboards", "tags": ["strangler"], "asDropdown": True, "includeVars": True, "keepTime": True}]
    return dashboard("strangler-migration", "Strangler migration",
                     "A migration in progress: traffic moved, errors and latency legacy vs new, shadow diffs, config and rollbacks.",
                     panels, True, links)


def route():
    r = 'route=~"$route"'
    panels = [
        panel(1, "Canary percent", [(f"max(strangler_canary_percent{{{INST}, {r}}})", "canary")], 0, 0, w=6, unit="percent", kind="stat"),
        panel(2, "Requests by side and status", [(f"sum by (side, status_class) (rate({req(r)}[{RATE}]))", "{{side}} {{status_class}}")], 6, 0, w=18, unit="reqps"),
        panel(3, "5xx rate, legacy vs new", [(error_ratio("legacy"), "legacy"), (error_ratio("new"), "new")], 0, 8, unit="percentunit"),
        panel(4, "Latency percentiles by side",
              [(quantile(q, s, by="side"), f"{s} p{int(q * 100)}") for s in ("legacy", "new") for q in (0.5, 0.9, 0.99)], 12, 8, unit="s"),
        panel(5, "Upstream errors by side and kind",
              [(f"sum by (side, kind) (rate(strangler_upstream_errors_total{{{INST}, {r}}}[{RATE}]))", "{{side}} {{kind}}")], 0, 16, unit="reqps"),
        panel(6, "Shadow verdicts", [(f"sum by (verdict) (rate(strangler_shadow_diffs_total{{{INST}, {r}}}[{RATE}]))", "{{verdict}}")], 12, 16, unit="reqps"),
        panel(7, "Shadow copies by outcome", [(f"sum by (outcome) (rate(strangler_shadow_requests_total{{{INST}, {r}}}[{RATE}]))", "{{outcome}}")], 0, 24, unit="reqps"),
        panel(8, "Shadow drops by reason", [(f"sum by (reason) (rate(strangler_shadow_dropped_total{{{INST}, {r}}}[{RATE}]))", "{{reason}}")], 12, 24, unit="reqps"),
        panel(9, "Diffs stored", [(f"sum (rate(strangler_shadow_stored_total{{{INST}, {r}}}[{RATE}]))", "stored")], 0, 32, unit="reqps"),
        panel(10, "Rollbacks", [(f"sum by (trigger) (increase(strangler_rollbacks_total{{{INST}, {r}}}[{RATE}]))", "{{trigger}}")], 12, 32, unit="short"),
    ]
    links = [{"title": "Migration overview", "type": "link", "url": "/d/strangler-migration", "keepTime": True, "includeVars": True}]
    return dashboard("strangler-route", "Strangler route", "One route in detail: traffic, errors and latency per side, upstream errors, shadowing.",
                     panels, False, links)


here = os.path.dirname(os.path.abspath(__file__))
for name, d in (("strangler-migration.json", migration()), ("strangler-route.json", route())):
    with open(os.path.join(here, "dashboards", name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
print("wrote grafana/dashboards/*.json")

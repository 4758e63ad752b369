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


def target(expr, legend, ref, instant=False):
    if instant:
        # One row per series, evaluated at the end of the time range (tables).
        return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": False, "instant": True, "format": "table"}
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def panel(pid, title, targets, x, y, w=12, h=8, unit="short", kind="timeseries", description="", instant=False, **extra):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, l, chr(ord("A") + i), instant) for i, (e, l) in enumerate(targets)],
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


# A route's stage and its rollout's state are gauges with one series per value
# (1 for the current one). For state timelines and stats they are folded into
# one number per route (the value's position in the list, from 1), which the
# value mappings below turn back into its name and colour. max over the fleet's
# proxies: every proxy exports the same stage and (mirrored from the store) the
# same rollout state.
STAGES = [("legacy", "#8e8e8e"), ("shadow", "blue"), ("canary", "yellow"), ("migrated", "green")]
ROLLOUT_STATES = [("idle", "#8e8e8e"), ("waiting", "blue"), ("promoting", "purple"), ("held", "orange"),
                  ("rolled_back", "red"), ("done", "green")]


def coded(metric, label, values, sel, by="route"):
    parts = "\n  or ".join(f'({metric}{{{sel}, {label}="{v}"}} * {i + 1})' for i, (v, _) in enumerate(values))
    agg = f"max by ({by})" if by else "max"
    return f"{agg} (\n  {parts}\n)"


def code_mappings(values):
    return [{"type": "value", "options": {str(i + 1): {"text": v, "color": c, "index": i} for i, (v, c) in enumerate(values)}}]


def text_mappings(values):
    return [{"type": "value", "options": {v: {"color": c, "index": i} for i, (v, c) in enumerate(values)}}]


def timeline_options():
    return {"mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.8,
            "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "single"}}


def coded_field_config(values):
    return {"defaults": {"unit": "none", "color": {"mode": "thresholds"}, "mappings": code_mappings(values),
                         "thresholds": {"mode": "absolute", "steps": [{"color": "#8e8e8e", "value": None}]},
                         "custom": {"fillOpacity": 80, "lineWidth": 0}},
            "overrides": []}


def below(panels, dy):
    """The same panels, dy grid units lower (room for panels above them)."""
    for p in panels:
        p["gridPos"]["y"] += dy
    return panels


def coded_stat(pid, title, metric, label, values, sel, x, y, w, h, description):
    p = panel(pid, title, [(coded(metric, label, values, sel, by=""), label)], x, y, w=w, h=h, kind="stat",
              description=description)
    p["fieldConfig"] = coded_field_config(values)
    p["options"]["colorMode"] = "background"
    return p


def column(name, **props):
    return {"matcher": {"id": "byName", "options": name}, "properties": [{"id": k, "value": v} for k, v in props.items()]}


def where_routes_stand(sel, y):
    """The migration at a glance, as `strangler status` prints it: routes
    migrated, share of requests on new, rollouts waiting for a person, a table
    of every route's stage beside its rollout, and both over time. Returns
    (panels, height)."""
    migrated = f'max by (route) (strangler_route_stage{{{sel}, stage="migrated"}})'
    on_new_route = req('route=~"$route", route!="default", side="new"')
    on_all_route = req('route=~"$route", route!="default"')

    routes_migrated = panel(
        13, "Routes migrated", [(f"count({migrated} == 1) or vector(0)", "migrated"), (f"count({migrated})", "routes")],
        0, y, w=8, h=4, unit="none", kind="stat",
        description="Routes whose stage is migrated (canary 100, no tenant pinned to legacy), and all configured routes.")
    on_new = panel(
        14, "Requests on new services (5m)",
        [(f'sum(rate(strangler_requests_total{{{INST}, side="new"}}[5m])) / sum(rate(strangler_requests_total{{{INST}}}[5m]))', "on new")],
        8, y, w=8, h=4, unit="percentunit", kind="stat",
        description="Share of all requests of the last 5 minutes answered by a new service, "
                    "unmatched requests (route default, always legacy) included.")
    waiting = panel(
        15, "Rollouts waiting for a person",
        [(f'count(max by (route) (strangler_rollout_state{{{sel}, state=~"held|rolled_back"}}) == 1) or vector(0)', "held or rolled back")],
        16, y, w=8, h=4, unit="none", kind="stat",
        description="Rollouts in state held or rolled_back: they move only when a person resumes, restarts or aborts them "
                    "(runbooks/rollout-held-or-failed.md).")
    waiting["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}
    waiting["fieldConfig"]["defaults"]["thresholds"] = {
        "mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 1}]}

    # One instant query per column, merged into one row per route (on the
    # labels they share: route). A and D only carry their label (stage,
    # state): their value, 1, is hidden.
    table = panel(16, "Where each route stands", [
        (f"max by (route, stage) (strangler_route_stage{{{sel}}}) == 1", "stage"),
        (f"max by (route) (strangler_canary_percent{{{sel}}})", "canary"),
        (f"max by (route) (strangler_rollout_step{{{sel}}})", "rollout step"),
        (f"max by (route, state) (strangler_rollout_state{{{sel}}}) == 1", "rollout state"),
        (f"sum by (route) (increase(strangler_rollout_failures_total{{{sel}}}[$__range]))", "gate failures"),
        (f"sum by (route) (rate({on_new_route}[5m])) / sum by (route) (rate({on_all_route}[5m]))", "on new"),
    ], 0, y + 4, w=24, h=9, kind="table", instant=True,
        description="Every route's stage (legacy, shadow, canary, migrated) and, beside it, its rollout: the step it is at "
                    "(canary %) and its state (idle, waiting, promoting, held, rolled_back, done; empty: no rollout: block). "
                    "Gate failures over the dashboard's time range; share of the last 5 minutes' requests served by new. "
                    "The same as `strangler status`.",
        options={"showHeader": True, "cellHeight": "sm", "footer": {"show": False}, "sortBy": [{"displayName": "route", "desc": False}]},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {
                "excludeByName": {"Time": True, "Value #A": True, "Value #D": True},
                "indexByName": {"route": 0, "stage": 1, "Value #B": 2, "Value #C": 3, "state": 4, "Value #E": 5, "Value #F": 6},
                "renameByName": {"Value #B": "canary", "Value #C": "rollout step", "state": "rollout state",
                                 "Value #E": "gate failures", "Value #F": "on new (5m)"},
            }},
        ])
    table["fieldConfig"]["overrides"] = [
        column("stage", **{"mappings": text_mappings(STAGES), "custom.cellOptions": {"type": "color-text"}}),
        column("rollout state", **{"mappings": text_mappings(ROLLOUT_STATES), "custom.cellOptions": {"type": "color-text"}}),
        column("canary", unit="percent"),
        column("rollout step", unit="percent"),
        column("gate failures", unit="none", decimals=0),
        column("on new (5m)", unit="percentunit"),
    ]

    stages = panel(
        17, "Stage over time", [(coded("strangler_route_stage", "stage", STAGES, sel), "{{route}}")], 0, y + 13, w=8, kind="state-timeline",
        description="legacy: canary 0, no shadow; shadow: canary 0, shadowed; canary: both sides get traffic; "
                    "migrated: canary 100, no tenant pinned to legacy.")
    states = panel(
        18, "Rollout state over time", [(coded("strangler_rollout_state", "state", ROLLOUT_STATES, sel), "{{route}}")], 8, y + 13, w=8,
        kind="state-timeline",
        description="Routes with a rollout: block. held and rolled_back wait for a person (runbooks/rollout-held-or-failed.md); "
                    "promoting that lasts more than a few seconds is a step that could not be applied.")
    for timeline, values in ((stages, STAGES), (states, ROLLOUT_STATES)):
        timeline["fieldConfig"] = coded_field_config(values)
        timeline["options"] = timeline_options()
    steps = panel(
        19, "Rollout step and gate failures",
        [(f"max by (route) (strangler_rollout_step{{{sel}}})", "{{route}} step"),
         (f"sum by (route) (increase(strangler_rollout_failures_total{{{sel}}}[{RATE}]))", "{{route}} gate failures")],
        16, y + 13, w=8, unit="short",
        description="The rollout's current step (canary %), and gate failures: a guard trip on the new side, or the diff report "
                    "reading not ready since the step began.")
    return [routes_migrated, on_new, waiting, table, stages, states, steps], 21


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
        panel(13, "Share of requests on the fast path",
              [(f"sum by (instance) (rate(strangler_fast_path_requests_total{{{INST}}}[{RATE}]))"
                f" / sum by (instance) (rate(strangler_requests_total{{{INST}}}[{RATE}]))", "{{instance}}")],
              0, 48, unit="percentunit",
              description="Requests served by the owned HTTP/1 exchange over all requests, per instance (all routes). "
                          "Routes with shadowing, recording, retries or a TLS backend, and requests that are not plain HTTP/1.1 "
                          "(HTTP/2, upgrades, Expect, chunked bodies) take Pingora's proxy engine; "
                          "0 means the instance runs with --fast-path=false."),
    ]
    # Where each route stands comes first: the migration at a glance.
    standing, height = where_routes_stand(f'{INST}, route=~"$route"', 0)
    panels = standing + below(panels, height)
    links = [{"title": "Route details", "type": "dashboards", "tags": ["strangler"], "asDropdown": True, "includeVars": True, "keepTime": True}]
    return dashboard("strangler-migration", "Strangler migration",
                     "A migration in progress: where each route stands (stage and rollout), traffic moved, errors and latency legacy vs new, shadow diffs, config and rollbacks.",
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
        panel(15, "Recordings by outcome", [(f"sum by (outcome) (rate(strangler_record_total{{{INST}, {r}}}[{RATE}]))", "{{outcome}}")], 0, 40, unit="reqps",
              description="Requests sampled by the route's record: block: stored, or why not (too_large, queue_full, store: the store "
                          "was down or slow, unanswered: no upstream answer). No data: the route has no record: block."),
        panel(16, "Replayed requests by outcome",
              [(f"sum by (outcome) (increase(strangler_replay_requests_total{{{INST}, {r}}}[{RATE}]))", "{{outcome}}")], 12, 40, unit="short",
              description="What strangler replay runs on this proxy did with the route's recordings: match, diff, noise, skipped "
                          "(a write without replay.allow_writes, or a redacted secret without a replay.headers value), failed."),
    ]
    sel = f"{INST}, {r}"
    stands = [
        coded_stat(11, "Stage", "strangler_route_stage", "stage", STAGES, sel, 0, 0, 6, 4,
                   "legacy: canary 0, no shadow; shadow: canary 0, shadowed; canary: both sides get traffic; "
                   "migrated: canary 100, no tenant pinned to legacy."),
        coded_stat(12, "Rollout state", "strangler_rollout_state", "state", ROLLOUT_STATES, sel, 6, 0, 6, 4,
                   "No data: the route has no rollout: block. held and rolled_back wait for a person "
                   "(runbooks/rollout-held-or-failed.md)."),
        panel(13, "Rollout step", [(f"max(strangler_rollout_step{{{sel}}})", "step")], 12, 0, w=6, h=4, unit="percent", kind="stat",
              description="The canary percentage the rollout is at."),
        panel(14, "Rollout gate failures", [(f"sum(increase(strangler_rollout_failures_total{{{sel}}}[$__range]))", "failures")],
              18, 0, w=6, h=4, unit="none", kind="stat",
              description="Over the dashboard's time range: guard trips on the new side, or the diff report reading not ready since the step began."),
    ]
    panels = stands + below(panels, 4)
    links = [{"title": "Migration overview", "type": "link", "url": "/d/strangler-migration", "keepTime": True, "includeVars": True}]
    return dashboard("strangler-route", "Strangler route", "One route in detail: stage and rollout, traffic, errors and latency per side, upstream errors, shadowing, recording and replay.",
                     panels, False, links)


here = os.path.dirname(os.path.abspath(__file__))
for name, d in (("strangler-migration.json", migration()), ("strangler-route.json", route())):
    with open(os.path.join(here, "dashboards", name), "w") as f:
        json.dump(d, f, indent=2)
        f.write("\n")
print("wrote grafana/dashboards/*.json")

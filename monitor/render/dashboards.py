"""Grafana dashboards as JSON, built from the spec in ``monitor/assets/dashboards.yml``.

The spec says what each panel shows (title, description, unit, queries, thresholds);
this module adds what every panel of every dashboard shares: the ``datasource``, ``job``
and ``model`` variables, the datasource references, the grid layout and the styling of
threshold lines. A query line that is only ``<<name>>`` stands for the spec's snippet
``name`` (PromQL that several queries share), indented like that line.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping
from typing import Any

from monitor.errors import InvalidInputError
from monitor.render.options import RenderOptions
from monitor.render.templates import read_asset
from monitor.yamlfile import load_yaml

__all__ = ["panel_titles", "render_dashboards"]

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_GRID_WIDTH = 24  # Grafana's grid is 24 columns wide


@functools.cache
def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = load_yaml(read_asset("dashboards.yml"), "monitor/assets/dashboards.yml")
    snippets = spec.get("snippets", {})
    for board in spec["dashboards"]:
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                target["expr"] = _expand(target["expr"], snippets)
    return spec


def _expand(expr: str, snippets: Mapping[str, str]) -> str:
    """``expr`` with each line that is only ``<<name>>`` replaced by the snippet ``name``."""
    lines = []
    for line in expr.splitlines():
        marker = line.strip()
        if not (marker.startswith("<<") and marker.endswith(">>")):
            lines.append(line)
            continue
        name = marker[2:-2]
        if name not in snippets:
            raise InvalidInputError(f"dashboards.yml: no snippet {name!r} for {marker}")
        indent = line[: len(line) - len(line.lstrip())]
        lines += [indent + part for part in snippets[name].strip().splitlines()]
    return "\n".join(lines)


def render_dashboards(options: RenderOptions | None = None) -> dict[str, str]:
    """The Grafana dashboards: file name -> JSON text."""
    spec = _spec()
    urls = _link_urls(options or RenderOptions())
    return {
        board["file"]: json.dumps(_dashboard(board, spec, urls), indent=2, ensure_ascii=False)
        + "\n"
        for board in spec["dashboards"]
    }


def _link_urls(options: RenderOptions) -> dict[str, str]:
    """What ``{runbook}`` and ``{daemon}`` stand for in a data link of the spec."""
    # The runbook pattern's labels become the table row's fields: ${__data.fields.model}.
    runbook = "".join(
        literal + ("" if name is None else f"${{__data.fields.{name}}}")
        for literal, name, _, _ in string.Formatter().parse(options.runbook_url_pattern)
    )
    return {"runbook": runbook, "daemon": options.daemon_url}


def panel_titles() -> dict[str, tuple[str, set[str]]]:
    """Dashboard key -> (dashboard title, its panel titles): what runbooks may refer to."""
    out = {}
    for board in _spec()["dashboards"]:
        titles = {p["title"] for p in board["panels"] if "title" in p}
        out[board["key"]] = (board["title"], titles)
    return out


def _dashboard(
    board: Mapping[str, Any], spec: Mapping[str, Any], urls: Mapping[str, str]
) -> dict[str, Any]:
    common = spec["common"]
    return {
        "uid": board["uid"],
        "title": board["title"],
        "description": board["description"].strip(),
        "tags": list(common["tags"]),
        "editable": True,
        "graphTooltip": 1,
        "refresh": common["refresh"],
        "schemaVersion": common["schema_version"],
        "version": 1,
        "timezone": "",
        "time": {"from": board.get("time_from", common["time_from"]), "to": "now"},
        "links": [
            {
                "title": "kmeans-monitor dashboards",
                "type": "dashboards",
                "tags": list(common["tags"]),
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "templating": {"list": _variables(common)},
        "annotations": {"list": [_annotation(a) for a in board.get("annotations", [])]},
        "panels": _panels(board["panels"], urls),
    }


def _variables(common: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "regex": "",
            "hide": 0,
            "refresh": 1,
            "includeAll": False,
            "multi": False,
            "current": {},
            "options": [],
        }
    ]
    for name, label, query in (
        ("job", "Job", common["job_query"]),
        ("model", "Model", common["model_query"]),
    ):
        out.append(
            {
                "name": name,
                "label": label,
                "type": "query",
                "datasource": dict(_DATASOURCE),
                "definition": query,
                "query": query,
                "regex": "",
                "sort": 1,
                "hide": 0,
                "refresh": 2,  # on time-range change: models come and go
                "multi": True,
                "includeAll": True,
                "allValue": ".+",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "options": [],
            }
        )
    return out


def _annotation(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": spec["name"],
        "datasource": dict(_DATASOURCE),
        "enable": True,
        "hide": False,
        "iconColor": spec.get("color", "blue"),
        "expr": spec["expr"].strip(),
        "step": spec.get("step", "1m"),
        "titleFormat": spec["title"],
        "textFormat": spec.get("text", ""),
        "tagKeys": spec.get("tag_keys", ""),
        "useValueForTime": False,
    }


def _panels(specs: list[Mapping[str, Any]], urls: Mapping[str, str]) -> list[dict[str, Any]]:
    """Lay the panels out left to right, wrapping at the grid width; a row starts a line."""
    panels: list[dict[str, Any]] = []
    x = y = line_height = 0
    for panel_id, spec in enumerate(specs, start=1):
        if "row" in spec:
            y += line_height
            x = line_height = 0
            panels.append(_row(panel_id, spec["row"], y))
            y += 1
            continue
        w, h = int(spec["w"]), int(spec["h"])
        if x + w > _GRID_WIDTH:
            y += line_height
            x = line_height = 0
        panels.append(_panel(panel_id, spec, {"h": h, "w": w, "x": x, "y": y}, urls))
        x += w
        line_height = max(line_height, h)
    return panels


def _row(panel_id: int, title: str, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": _GRID_WIDTH, "x": 0, "y": y},
        "panels": [],
    }


def _panel(
    panel_id: int, spec: Mapping[str, Any], grid: dict[str, int], urls: Mapping[str, str]
) -> dict[str, Any]:
    kind = spec["type"]
    targets = [_target(kind, index, target) for index, target in enumerate(spec["targets"])]
    overrides = [
        _threshold_override(entry["refId"])
        for entry, target in zip(targets, spec["targets"], strict=True)
        if target.get("threshold")
    ]
    overrides += [
        _links_override(field, links, urls) for field, links in spec.get("links", {}).items()
    ]
    panel: dict[str, Any] = {
        "id": panel_id,
        "type": kind,
        "title": spec["title"],
        "description": spec["description"].strip(),
        "datasource": dict(_DATASOURCE),
        "gridPos": grid,
        "fieldConfig": {"defaults": _field_defaults(kind, spec), "overrides": overrides},
        "options": _panel_options(kind, spec),
        "targets": targets,
    }
    if kind == "table":
        hidden = {name: True for name in spec.get("hide", [])}
        organize = {"excludeByName": hidden, "renameByName": dict(spec.get("rename", {}))}
        panel["transformations"] = [{"id": "organize", "options": organize}]
    return panel


def _links_override(
    field: str, links: list[Mapping[str, str]], urls: Mapping[str, str]
) -> dict[str, Any]:
    """Data links on one column of a table: ``{runbook}``/``{daemon}`` filled in."""
    value = []
    for link in links:
        url = link["url"]
        for key, target in urls.items():
            url = url.replace("{" + key + "}", target)
        value.append({"title": link["title"], "url": url, "targetBlank": False})
    return {
        "matcher": {"id": "byName", "options": field},
        "properties": [{"id": "links", "value": value}],
    }


def _field_defaults(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": spec["unit"]}
    for key in ("min", "max", "decimals"):
        if key in spec:
            defaults[key] = spec[key]
    steps: list[dict[str, Any]] = [{"color": spec.get("base_color", "green"), "value": None}]
    steps += [{"color": color, "value": value} for value, color in spec.get("thresholds", [])]
    defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    if "mappings" in spec:
        defaults["mappings"] = [_mapping(m) for m in spec["mappings"]]
    if kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "line",
            # Batch SLIs change once per run: steps, not slopes between runs.
            "lineInterpolation": spec.get("interpolation", "stepAfter"),
            "lineWidth": 1,
            "fillOpacity": 10 if spec.get("stack") else 0,
            "showPoints": "never",
            "spanNulls": False,
            "stacking": {"mode": "normal" if spec.get("stack") else "none", "group": "A"},
        }
    return defaults


def _target(kind: str, index: int, target: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "refId": chr(ord("A") + index),
        "datasource": dict(_DATASOURCE),
        "expr": target["expr"].strip(),
        "legendFormat": target.get("legend", "__auto"),
        "range": not target.get("instant", False),
        "instant": bool(target.get("instant", False)),
    }
    if kind == "table":
        entry["format"] = "table"
    return entry


def _mapping(spec: Mapping[str, Any]) -> dict[str, Any]:
    result = {"text": spec["text"], "color": spec["color"], "index": 0}
    return {"type": "value", "options": {str(spec["value"]): result}}


def _threshold_override(ref: str) -> dict[str, Any]:
    """Draw the series of query ``ref`` as a dashed red threshold line."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "custom.lineWidth", "value": 2},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
        ],
    }


def _panel_options(kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    reduce = {"calcs": [spec.get("calc", "lastNotNull")], "fields": "", "values": False}
    if kind == "timeseries":
        return {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": reduce,
            "colorMode": "value",
            "graphMode": "none",
            "textMode": "value_and_name" if spec.get("show_name") else "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    if kind == "bargauge":
        return {
            "reduceOptions": reduce,
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    if kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    raise InvalidInputError(f"dashboards.yml: unsupported panel type {kind!r}")

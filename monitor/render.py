"""Alert rules, Grafana dashboards and runbook pages, rendered from ``monitor/assets``.

The only module that imports Jinja2. Templates are read with importlib.resources, so
rendering works from an installed package as well as from a checkout. The generated
files (``alerts/*.yml``, ``dashboards/*.json``, ``runbooks/*.md``) are committed;
``stale_files`` tells whether they still match their sources.
"""

from __future__ import annotations

import functools
import html
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import yaml

from monitor.checks import check_float, check_int
from monitor.errors import InvalidInputError

__all__ = [
    "RenderOptions",
    "UnknownAlertError",
    "alert_names",
    "markdown_to_html",
    "render_all",
    "render_dashboards",
    "render_rules",
    "render_runbooks",
    "runbook_html",
    "runbook_markdown",
    "stale_files",
]

RULES_FILE = "alerts/kmeans-monitor.yml"
_GENERATED_GLOBS = (("alerts", "*.yml"), ("dashboards", "*.json"), ("runbooks", "*.md"))
_DASHBOARD_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_GRID_WIDTH = 24


@dataclass(frozen=True)
class RenderOptions:
    """What may vary between renderings of the rules and runbooks."""

    runbook_url_pattern: str = "http://127.0.0.1:9310/runbooks/{alertname}"
    time_scale: float = 1.0  # multiplies every `for:` and range window of the rules
    job: str = "kmeans-monitor"  # the Prometheus job that scrapes the daemon
    drift_storm_features: int = 3  # this many drifting features make one model-level alert

    def __post_init__(self) -> None:
        pattern = self.runbook_url_pattern
        try:
            ok = isinstance(pattern, str) and "{alertname}" in pattern
            ok = ok and pattern.format(alertname="A") == pattern.replace("{alertname}", "A")
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok or any(c.isspace() for c in pattern):
            raise InvalidInputError(
                "The 'runbook_url_pattern' parameter of RenderOptions must be a str without "
                f"spaces whose only field is '{{alertname}}'. Got {pattern!r} instead."
            )
        scale = check_float(
            self.time_scale, "time_scale", low=0.0, low_inclusive=False, owner="RenderOptions"
        )
        object.__setattr__(self, "time_scale", scale)
        # The job lands inside a PromQL string literal and a YAML scalar.
        if not isinstance(self.job, str) or not re.fullmatch(r"[A-Za-z0-9_.:/-]+", self.job):
            raise InvalidInputError(
                "The 'job' parameter of RenderOptions must be a str of letters, digits and "
                f"'_.:/-'. Got {self.job!r} instead."
            )
        storm = check_int(
            self.drift_storm_features, "drift_storm_features", low=2, owner="RenderOptions"
        )
        object.__setattr__(self, "drift_storm_features", storm)

    def runbook_url(self, alertname: str) -> str:
        """The runbook link of one alert."""
        return self.runbook_url_pattern.format(alertname=alertname)


class UnknownAlertError(KeyError):
    """No alert (and so no runbook) has that name; the message lists the valid ones."""

    def __init__(self, alertname: str, valid: list[str]) -> None:
        super().__init__(alertname)
        self.alertname = alertname
        self.valid = list(valid)

    def __str__(self) -> str:  # KeyError quotes its argument; a sentence reads better
        return f"no alert named {self.alertname!r}; valid names: {', '.join(self.valid)}"


# --------------------------------------------------------------------------- durations

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def _parse_prometheus_duration(text: str) -> float:
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise InvalidInputError(f"not a Prometheus duration: {text!r}")
    return total


def _format_prometheus_duration(seconds: int) -> str:
    parts = []
    for unit in ("d", "h", "m", "s"):
        size = int(_DURATION_SECONDS[unit])
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _scaled_duration(text: str, scale: float) -> str:
    # Whole seconds (Prometheus windows below 1s are noise) and never below 1s.
    seconds = max(1, math.floor(_parse_prometheus_duration(text) * scale + 0.5))
    return _format_prometheus_duration(seconds)


# --------------------------------------------------------------------------- templates


def _assets() -> Any:
    return resources.files("monitor") / "assets"


def _read_asset(*parts: str) -> str:
    node = _assets()
    for part in parts:
        node = node / part
    text: str = node.read_text(encoding="utf-8")
    return text


class _AssetLoader(jinja2.BaseLoader):
    """Loads templates from monitor/assets through importlib.resources."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        try:
            source = _read_asset(*template.split("/"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise jinja2.TemplateNotFound(template) from exc
        return source, None, lambda: True


@functools.cache
def _environment(kind: str) -> jinja2.Environment:
    options: dict[str, Any] = {
        "loader": _AssetLoader(),
        "undefined": jinja2.StrictUndefined,
        "keep_trailing_newline": True,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "autoescape": False,  # YAML and Markdown; HTML escaping happens in markdown_to_html
    }
    if kind == "rules":
        # Prometheus annotations are Go templates full of {{ }}: use other delimiters.
        options.update(
            block_start_string="<%",
            block_end_string="%>",
            variable_start_string="<<",
            variable_end_string=">>",
            comment_start_string="<#",
            comment_end_string="#>",
        )
    return jinja2.Environment(**options)


def render_rules(options: RenderOptions | None = None) -> str:
    """The Prometheus alert rules file (YAML text)."""
    return _render_rules(options or RenderOptions())


@functools.lru_cache(maxsize=8)
def _render_rules(options: RenderOptions) -> str:
    template = _environment("rules").get_template("rules.yml.j2")
    return template.render(
        options=options,
        dur=lambda text: _scaled_duration(text, options.time_scale),
        runbook_url=lambda name: json.dumps(options.runbook_url(name)),
    )


@functools.lru_cache(maxsize=8)
def _rules_by_alert(options: RenderOptions) -> dict[str, list[dict[str, Any]]]:
    document = yaml.safe_load(_render_rules(options))
    by_alert: dict[str, list[dict[str, Any]]] = {}
    for group in document["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                by_alert.setdefault(rule["alert"], []).append(rule)
    return by_alert


def alert_names() -> list[str]:
    """Every alert the shipped rules define, sorted."""
    return sorted(_rules_by_alert(RenderOptions()))


# --------------------------------------------------------------------------- dashboards


@functools.cache
def _dashboard_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(_read_asset("dashboards.yml"))
    return spec


def render_dashboards() -> dict[str, str]:
    """The Grafana dashboards: file name -> JSON text."""
    spec = _dashboard_spec()
    return {
        board["file"]: json.dumps(_dashboard(board, spec), indent=2, ensure_ascii=False) + "\n"
        for board in spec["dashboards"]
    }


def _dashboard(board: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
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
        "panels": _panels(board["panels"]),
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
                "datasource": dict(_DASHBOARD_DATASOURCE),
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
        "datasource": dict(_DASHBOARD_DATASOURCE),
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


def _panels(specs: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    x = y = line_height = 0
    for panel_id, spec in enumerate(specs, start=1):
        if "row" in spec:
            y += line_height
            x = line_height = 0
            panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": spec["row"],
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": _GRID_WIDTH, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
            continue
        w, h = int(spec["w"]), int(spec["h"])
        if x + w > _GRID_WIDTH:
            y += line_height
            x = line_height = 0
        panels.append(_panel(panel_id, spec, {"h": h, "w": w, "x": x, "y": y}))
        x += w
        line_height = max(line_height, h)
    return panels


def _panel(panel_id: int, spec: Mapping[str, Any], grid: dict[str, int]) -> dict[str, Any]:
    kind = spec["type"]
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
    targets = []
    overrides = []
    for index, target in enumerate(spec["targets"]):
        ref = chr(ord("A") + index)
        entry: dict[str, Any] = {
            "refId": ref,
            "datasource": dict(_DASHBOARD_DATASOURCE),
            "expr": target["expr"].strip(),
            "legendFormat": target.get("legend", "__auto"),
            "range": not target.get("instant", False),
            "instant": bool(target.get("instant", False)),
        }
        if kind == "table":
            entry["format"] = "table"
        targets.append(entry)
        if target.get("threshold"):
            overrides.append(_threshold_override(ref))
    panel: dict[str, Any] = {
        "id": panel_id,
        "type": kind,
        "title": spec["title"],
        "description": spec["description"].strip(),
        "datasource": dict(_DASHBOARD_DATASOURCE),
        "gridPos": grid,
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": _panel_options(kind, spec),
        "targets": targets,
    }
    if kind == "table":
        panel["transformations"] = [
            {
                "id": "organize",
                "options": {"excludeByName": {name: True for name in spec.get("hide", [])}},
            }
        ]
    return panel


def _mapping(spec: Mapping[str, Any]) -> dict[str, Any]:
    result = {"text": spec["text"], "color": spec["color"], "index": 0}
    return {"type": "value", "options": {str(spec["value"]): result}}


def _threshold_override(ref: str) -> dict[str, Any]:
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


def _panel_titles() -> dict[str, tuple[str, set[str]]]:
    """Dashboard key -> (dashboard title, its panel titles): for runbook references."""
    out = {}
    for board in _dashboard_spec()["dashboards"]:
        titles = {p["title"] for p in board["panels"] if "title" in p}
        out[board["key"]] = (board["title"], titles)
    return out


# --------------------------------------------------------------------------- runbooks


def render_runbooks(options: RenderOptions | None = None) -> dict[str, str]:
    """One Markdown page per alert: file name (``AlertName.md``) -> text."""
    return dict(_render_runbooks(options or RenderOptions()))


@functools.lru_cache(maxsize=8)
def _render_runbooks(options: RenderOptions) -> tuple[tuple[str, str], ...]:
    rules = _rules_by_alert(options)
    boards = _panel_titles()
    env = _environment("runbooks")

    def panel(board: str, title: str) -> str:
        # A runbook that points at a panel that does not exist fails the rendering.
        board_title, titles = boards[board]
        if title not in titles:
            raise InvalidInputError(f"runbook refers to a missing panel {title!r} of {board!r}")
        return f"**{board_title}** → **{title}**"

    pages = []
    for name in sorted(rules):
        template = env.get_template(f"runbooks/{name}.md.j2")
        text = template.render(
            alert=name,
            rules=rules[name],
            options=options,
            panel=panel,
            dur=lambda t: _scaled_duration(t, options.time_scale),
        )
        text = re.sub(r"\n{3,}", "\n\n", text)  # macros leave blank runs behind
        pages.append((f"{name}.md", text.strip("\n") + "\n"))
    return tuple(pages)


def runbook_markdown(alertname: str) -> str:
    """The runbook page of one alert, as Markdown (default options)."""
    pages = dict(_render_runbooks(RenderOptions()))
    try:
        return pages[f"{alertname}.md"]
    except KeyError:
        raise UnknownAlertError(alertname, alert_names()) from None


def runbook_html(alertname: str) -> str:
    """The runbook page of one alert as a small self-contained HTML document."""
    body = markdown_to_html(runbook_markdown(alertname))
    title = html.escape(f"{alertname} · kmeans-monitor runbook")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;line-height:1.5;color:#1f2328;"
    "max-width:52rem;margin:2rem auto;padding:0 1rem}"
    "pre{background:#f6f8fa;padding:.75rem 1rem;overflow-x:auto;border-radius:6px}"
    "code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}"
    "h1{border-bottom:1px solid #d0d7de;padding-bottom:.3rem}"
)


# --------------------------------------------------------------------------- markdown

_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)\s*$")
_HEADING = re.compile(r"^(#{1,6}) +(\S.*?)\s*$")
_BULLET = re.compile(r"^- +(\S.*)$")
_NUMBERED = re.compile(r"^\d+\. +(\S.*)$")
_UNSUPPORTED = re.compile(r"^(>|\||<|\s*[*+] |\s+- |\s+\d+\. |={3,}|-{3,}|\*{3,}|\t)")
_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_SAFE_URL = re.compile(r"^(https?://|/|#|\./|\.\./|[A-Za-z0-9_.-]+(?:[/#?]|$))")


def markdown_to_html(text: str) -> str:
    """HTML for the Markdown subset the runbooks use; anything else raises ValueError.

    The subset: ATX headings, paragraphs, flat ``-`` and ``1.`` lists (continuation
    lines indented), fenced code blocks, and inline code, ``**bold**`` and
    ``[links](url)``. Raw HTML is escaped, never passed through.
    """
    out: list[str] = []
    paragraph: list[str] = []
    items: list[list[str]] = []
    list_tag = ""
    fence: list[str] | None = None
    fence_lang = ""

    def flush_paragraph() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>\n")
            paragraph.clear()

    def flush_list() -> None:
        if items:
            lis = "".join(f"<li>{_inline(' '.join(item))}</li>\n" for item in items)
            out.append(f"<{list_tag}>\n{lis}</{list_tag}>\n")
            items.clear()

    for number, line in enumerate(text.splitlines(), start=1):
        if fence is not None:
            if line.strip() == "```":
                cls = f' class="language-{fence_lang}"' if fence_lang else ""
                code = html.escape("\n".join(fence) + "\n")
                out.append(f"<pre><code{cls}>{code}</code></pre>\n")
                fence = None
            else:
                fence.append(line)
            continue
        if not line.strip():
            flush_paragraph()  # a list survives blank lines between its items
            continue
        if match := _FENCE.match(line):
            flush_paragraph()
            flush_list()
            fence, fence_lang = [], match.group(1)
        elif match := _HEADING.match(line):
            flush_paragraph()
            flush_list()
            level, title = len(match.group(1)), match.group(2)
            slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            out.append(f'<h{level} id="{slug}">{_inline(title)}</h{level}>\n')
        elif match := (_BULLET.match(line) or _NUMBERED.match(line)):
            tag = "ul" if line.startswith("-") else "ol"
            flush_paragraph()
            if items and list_tag != tag:
                flush_list()
            list_tag = tag
            items.append([match.group(1)])
        elif items and not paragraph and line.startswith("  ") and not _starts_block(line):
            items[-1].append(line.strip())
        elif _UNSUPPORTED.match(line) or line.startswith(" "):
            raise ValueError(f"line {number}: Markdown outside the supported subset: {line!r}")
        else:
            flush_list()
            paragraph.append(line.strip())
    if fence is not None:
        raise ValueError("a fenced code block is not closed")
    flush_paragraph()
    flush_list()
    return "".join(out)


def _starts_block(line: str) -> bool:
    """True when an indented line would open a nested block (unsupported in list items)."""
    text = line.lstrip()
    patterns = (_FENCE, _HEADING, _BULLET, _NUMBERED, _UNSUPPORTED)
    return any(p.match(text) for p in patterns)


def _inline(text: str) -> str:
    parts = text.split("`")
    if len(parts) % 2 == 0:
        raise ValueError(f"unbalanced backtick in {text!r}")
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            out.append(_links(_BOLD.sub(r"<strong>\1</strong>", html.escape(part))))
    return "".join(out)


def _links(escaped: str) -> str:
    def link(match: re.Match[str]) -> str:
        label, url = match.group(1), match.group(2)
        if not _SAFE_URL.match(html.unescape(url)):
            return label  # javascript: and friends lose the link, keep the text
        return f'<a href="{url}">{label}</a>'

    return _LINK.sub(link, escaped)


# --------------------------------------------------------------------------- files


def _generated(options: RenderOptions) -> dict[str, str]:
    files = {RULES_FILE: render_rules(options)}
    files.update({f"dashboards/{name}": text for name, text in render_dashboards().items()})
    files.update({f"runbooks/{name}": text for name, text in render_runbooks(options).items()})
    return files


def _existing(root: Path) -> set[str]:
    found = set()
    for directory, pattern in _GENERATED_GLOBS:
        for path in (root / directory).glob(pattern):
            found.add(path.relative_to(root).as_posix())
    return found


def render_all(root: Path, options: RenderOptions | None = None) -> list[Path]:
    """Write every generated file under ``root``; return their paths.

    Files in the generated directories that no longer correspond to anything (the
    runbook of a removed alert) are deleted, so every runbook keeps its alert.
    """
    root = Path(root)
    files = _generated(options or RenderOptions())
    for stale in sorted(_existing(root) - files.keys()):
        (root / stale).unlink()
    written = []
    for relative, text in sorted(files.items()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_files(root: Path) -> list[str]:
    """Generated files under ``root`` that differ from a fresh rendering (default options).

    Missing files, files with other content and leftover files that nothing
    generates are all stale; paths are relative to ``root``, sorted.
    """
    root = Path(root)
    files = _generated(RenderOptions())
    stale = set(_existing(root) - files.keys())
    for relative, text in files.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.add(relative)
    return sorted(stale)

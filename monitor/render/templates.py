"""The package's one Jinja2 owner: the asset loader and the three template flavours.

Templates are read with importlib.resources, so rendering works from an installed
package as well as from a checkout. Each flavour is one environment:

- ``rules``: YAML with ``<< >>``, ``<% %>`` and ``<# #>`` as delimiters, so that the
  ``{{ }}`` of Prometheus' Go templates in the annotations pass through untouched;
- ``markdown``: the runbook pages, standard delimiters, no escaping (Markdown is text;
  the HTML converter escapes it);
- ``html``: the daemon's pages, with autoescape, so every value is escaped unless a
  template marks it ``|safe``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources
from typing import Any, Literal, get_args

import jinja2

from monitor.checks import check_choice

__all__ = ["Flavour", "read_asset", "render_template"]

Flavour = Literal["rules", "markdown", "html"]

_RULES_DELIMITERS = {
    "block_start_string": "<%",
    "block_end_string": "%>",
    "variable_start_string": "<<",
    "variable_end_string": ">>",
    "comment_start_string": "<#",
    "comment_end_string": "#>",
}


def read_asset(*parts: str) -> str:
    """The text of ``monitor/assets/<parts...>`` (UTF-8)."""
    node: Any = resources.files("monitor") / "assets"
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
            source = read_asset(*template.split("/"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise jinja2.TemplateNotFound(template) from exc
        return source, None, lambda: True  # package data does not change under us


@functools.cache
def _environment(flavour: Flavour) -> jinja2.Environment:
    options: dict[str, Any] = {
        "loader": _AssetLoader(),
        "undefined": jinja2.StrictUndefined,  # a misspelt name fails instead of vanishing
        "keep_trailing_newline": True,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "autoescape": flavour == "html",
    }
    if flavour == "rules":
        options.update(_RULES_DELIMITERS)
    return jinja2.Environment(**options)


def render_template(flavour: Flavour, name: str, /, **context: Any) -> str:
    """Render the asset template ``name`` (a path under monitor/assets) with ``context``."""
    check_choice(flavour, "flavour", get_args(Flavour), owner="render_template")
    return _environment(flavour).get_template(name).render(**context)

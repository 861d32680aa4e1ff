"""The only module that imports PyYAML: a strict loader for files people write by hand.

PyYAML's safe loader accepts what an operator never means: a key given twice (the last
one silently wins, so ``k: 3`` then ``k: 40`` runs with 40), aliases that expand to
gigabytes (the "billion laughs"), and it reports bytes that are not UTF-8 as a decoder
traceback. ``load_yaml`` refuses each of these with one line that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError

__all__ = ["MAX_ALIASES", "MAX_BYTES", "dump_yaml", "load_yaml", "read_yaml"]

MAX_BYTES = 4 * 2**20  # a configuration or asset file larger than this is a mistake
MAX_ALIASES = 100  # anchors are handy for shared options; thousands of uses are an attack


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and counts alias uses."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"more than {MAX_ALIASES} alias uses (*name); expand them by hand",
                    mark,
                )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *shared`: the base class merges it; keys written here win
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                continue  # the base class reports unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def load_yaml(text: str, where: str) -> Any:
    """Parse ``text`` strictly; ConfigError naming ``where`` and the line otherwise."""
    if len(text) > MAX_BYTES:
        raise ConfigError([f"{where}: larger than {MAX_BYTES // 2**20} MiB; not a configuration"])
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no objects
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: not valid YAML: {_one_line(exc)}"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: not valid YAML: nested too deeply"]) from None


def read_yaml(path: Path) -> Any:
    """Read and parse a UTF-8 YAML file; every failure is a ConfigError naming the file."""
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a configuration"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line})"]
        ) from None
    return load_yaml(text, str(path))


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)

"""The only module that imports PyYAML: a strict loader for files people write by hand.

PyYAML's safe loader accepts what an operator never means: a key given twice (the last
one silently wins, so ``k: 3`` then ``k: 40`` runs with 40), aliases that expand to
gigabytes (the "billion laughs"), YAML 1.1's octal and base-60 numbers (``k: 010`` is 8,
``1:30`` is 90), and it reports bytes that are not UTF-8 as a decoder traceback.
``load_yaml`` refuses each of these with one line that names the file; the octal and
base-60 numbers all together, with the file as YAML 1.1 reads them
(``AmbiguousNumbers``), so that a caller can list them with its own problems of the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from monitor.checks import brief, brief_text
from monitor.errors import ConfigError
from monitor.regularfiles import read_file

__all__ = [
    "MAX_ALIASES",
    "MAX_ALIAS_NODES",
    "MAX_BYTES",
    "AmbiguousNumbers",
    "dump_yaml",
    "load_yaml",
    "read_yaml",
]

MAX_BYTES = 4 * 2**20  # a configuration or asset file larger than this is a mistake
MAX_ALIASES = 100  # anchors are handy for shared options; thousands of uses are an attack
# Values (scalars, lists, mappings) the aliases of a document stand for, all uses added
# up: 100 models merging 100 shared options are about 20,000; nine aliases to nine aliases...
# ten levels deep (a 359-byte file) are 3.4 billion, which any walk of the value repeats.
MAX_ALIAS_NODES = 100_000


class AmbiguousNumbers(ConfigError):
    """Octal or base-60 numbers in a file that is otherwise valid YAML: ``problems`` has one
    line for each, ``data`` the file as YAML 1.1 reads them (``010`` is 8)."""

    def __init__(self, problems: list[str], data: Any) -> None:
        super().__init__(problems)
        self.data = data


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, and aliases that are too many, stand for
    too much or hold themselves."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._alias_nodes = 0  # values the aliases stand for so far
        self._sizes: dict[yaml.Node, int] = {}  # values under each node, aliases expanded
        self._open: set[str] = set()  # anchors of the nodes being composed
        self.ambiguous: list[str] = []  # the octal and base-60 numbers, at their lines

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
            return super().compose_node(parent, index)
        anchor = getattr(event, "anchor", None)  # a start or scalar event
        if anchor is None:
            return super().compose_node(parent, index)
        self._open.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open.discard(anchor)

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise self._refuse(f"more than {MAX_ALIASES} alias uses (*name); expand them by hand")
        if event.anchor in self._open:
            raise self._refuse(f"alias *{event.anchor} is inside the value it names")
        target = self.anchors.get(event.anchor)
        if target is None:
            return  # the base class reports an undefined alias
        self._alias_nodes += self._size(target)
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise self._refuse(
                f"aliases (*name) stand for more than {MAX_ALIAS_NODES:,} values in all"
            )

    def _refuse(self, problem: str) -> yaml.constructor.ConstructorError:
        """``problem`` at the event about to be composed."""
        return yaml.constructor.ConstructorError(None, None, problem, self.peek_event().start_mark)

    def _size(self, node: yaml.Node) -> int:
        """How many values ``node`` is, its aliases expanded; each node is counted once."""
        size = self._sizes.get(node)
        if size is None:
            if isinstance(node, yaml.MappingNode):
                size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._size(item) for item in node.value)
            else:
                size = 1
            self._sizes[node] = size
        return size

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        """YAML 1.1's int, less its octal (``010`` is 8) and base-60 (``1:30`` is 90)
        forms, which nobody writing a configuration means."""
        digits = str(node.value).replace("_", "").lstrip("+-")
        if ":" in digits or (len(digits) > 1 and digits[0] == "0" and digits[1] in "01234567"):
            self._ambiguous(node, super().construct_yaml_int(node))
        if len(digits) > _MAX_INT_DIGITS:  # int() refuses them, in words about sys
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"an integer of {len(digits)} digits; no setting takes more than {_MAX_INT_DIGITS}",
                node.start_mark,
            )
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        """YAML 1.1's float, less its base-60 form (``1:30.5`` is 90.5)."""
        if ":" in str(node.value):
            self._ambiguous(node, super().construct_yaml_float(node))
        return super().construct_yaml_float(node)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        """An unquoted date or time; one that is no date (``2024-02-30``, hour 25) is a
        problem at its line, where PyYAML raised a ValueError through to a traceback."""
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{node.value} is no date or time ({exc}): write a real one, or quote it "
                f"('{node.value}') for the text",
                node.start_mark,
            ) from None

    def _ambiguous(self, node: yaml.ScalarNode, value: Any) -> None:
        """Noted, not raised: the file reads on, so that its other problems are found."""
        form = "base 60" if ":" in str(node.value) else "octal"
        mark = node.start_mark
        self.ambiguous.append(
            f"line {mark.line + 1}, column {mark.column + 1}: {node.value} is {value} in "
            f"YAML 1.1 ({form}): write {value}, or quote it ('{node.value}') for the text"
        )

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
                    f"duplicate key {brief(key)} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_MAX_INT_DIGITS = 100
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _StrictLoader.construct_yaml_float)
_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_yaml_timestamp)
# YAML 1.2's exponent floats: YAML 1.1 (PyYAML) needs a point and a signed exponent, so it
# read `tol: 1e-4` and `1.5e3` as strings, which a float field refused ("must be a float;
# got '1e-4'").
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def _one_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


def load_yaml(text: str, where: str) -> Any:
    """Parse ``text`` strictly; ConfigError naming ``where`` and the line otherwise
    (AmbiguousNumbers, with the data, when octal or base-60 numbers are all it has)."""
    if len(text) > MAX_BYTES:
        raise ConfigError([f"{where}: larger than {MAX_BYTES // 2**20} MiB; not a configuration"])
    loader = _StrictLoader(text)  # a SafeLoader subclass: no objects
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ConfigError([f"{where}: not valid YAML: {_one_line(exc)}"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: not valid YAML: nested too deeply"]) from None
    finally:
        loader.dispose()
    if loader.ambiguous:
        raise AmbiguousNumbers([f"{where}: not valid YAML: {p}" for p in loader.ambiguous], data)
    return data


def read_yaml(path: Path, *, regular: bool = False, name: str | None = None) -> Any:
    """Read and parse a UTF-8 YAML file; every failure is a ConfigError naming the file
    (as ``name`` when given: the field that gave the path, with it).

    ``regular``: only a regular file, opened without blocking (the web configuration: a
    FIFO in its place hung check-config and the daemon). The configuration file itself
    may be a pipe that a shell made (``check-config <(envsubst < monitor.yaml.in)``).
    """
    shown = name or brief_text(str(path))
    try:
        if regular:
            data = read_file(path, most=MAX_BYTES)
        else:
            with Path(path).open("rb") as fh:
                data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{shown}: cannot read: {exc.strerror or exc}"]) from None
    if len(data) > MAX_BYTES:
        raise ConfigError([f"{shown}: larger than {MAX_BYTES // 2**20} MiB; not a configuration"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        byte = f"byte 0x{data[exc.start]:02x} on line {line}"
        raise ConfigError([f"{shown}: not UTF-8 text ({byte})"]) from None
    return load_yaml(text, name or str(path))


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in the order given."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)

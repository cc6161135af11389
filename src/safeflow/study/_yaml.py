"""YAML with line numbers: a SafeLoader whose mappings and sequences remember where they are.

Every mapping is a :class:`_Map` (a dict with ``line`` and ``key_lines``) and every sequence a
:class:`_Seq` (a list with ``line`` and ``item_lines``), 1-based, from the nodes'
``start_mark``. Duplicate keys are an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from safeflow.study.errors import StudyError


class _Map(dict):  # type: ignore[type-arg]
    """A YAML mapping that remembers its line and the line of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class _Seq(list):  # type: ignore[type-arg]
    """A YAML sequence that remembers its line and the line of each item."""

    line: int = 0
    item_lines: list[int]


class _Duplicate(Exception):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(key)
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers; duplicate keys fail."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    out = _Map()
    out.line, out.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            seen = key in out
        except TypeError:  # unhashable key, e.g. a list
            raise _Duplicate(key, line, -1) from None
        if seen:
            raise _Duplicate(key, line, out.key_lines[key])
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> _Seq:
    out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def compose(text: str, path: Path | None) -> Any:
    """Parse YAML text into _Map / _Seq / scalars; YAML errors are StudyError with a line."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except _Duplicate as d:
        if d.first < 0:
            raise StudyError(f"a mapping key must be a plain value; got {d.key!r}",
                             path=path, line=d.line) from None
        raise StudyError(f"duplicate key {d.key!r} (first on line {d.first}); "
                         "each field may appear once", path=path, line=d.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = None if mark is None else mark.line + 1
        what = str(e.problem or e.context or "syntax error")
        if e.context and e.problem:
            ctx = e.context_mark
            where = "" if ctx is None else f" that starts on line {ctx.line + 1}"
            what += f" ({e.context}{where})"
        raise StudyError(f"not valid YAML: {what}", path=path, line=line) from None
    except yaml.YAMLError as e:
        raise StudyError(f"not valid YAML: {e}", path=path) from None
    finally:
        loader.dispose()

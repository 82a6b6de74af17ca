"""Settings in small groups: how a layered set of mappings becomes a class's arguments.

A data module and a model take a few top-level settings and a few frozen option dataclasses (a config's
``split: {block: MS}``, LightningCLI's ``--data.split.block MS``). :func:`merge_settings` builds those
arguments from layers (a config section, a checkpoint's saved hyperparameters, changes), later layers winning
field by field, with groups given as mappings or option objects, or field by field under the flat names that
checkpoints used before the settings were grouped.

Every YAML file flarelib reads (a training config, the data catalog, a config file given to the training CLI)
goes through :func:`load_yaml` / :func:`check_yaml`: a key given twice in one mapping is refused (``yaml.safe_load``
keeps the last one silently), naming the file, the key and both lines, and a syntax error names
``file:line:col: problem`` on one line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A YAML file (a training config, a catalog) that is not valid YAML, repeats a key or is not a mapping; the
    one-line message names the file (and ``file:line:col`` of the problem)."""


def _where(source: str | Path, mark: yaml.Mark | None) -> str:
    """``source:line:col`` of a YAML mark (1-based, as editors count), or ``source`` without one."""
    return f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(source)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def yaml_problem(err: yaml.YAMLError, source: str | Path) -> str:
    """One line ``source:line:col: problem (context at line L, column C)`` for a PyYAML error."""
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = _one_line(err.problem or err.context or "not valid YAML")
        context = ""
        if err.context and err.problem and err.context_mark is not None:
            context = (f" ({_one_line(err.context)} at line {err.context_mark.line + 1}, "
                       f"column {err.context_mark.column + 1})")
        return f"{_where(source, mark)}: {problem}{context}"
    return f"{source}: {_one_line(err) or 'not valid YAML'}"


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicate_key(node: yaml.Node, source: str | Path, seen: set[int]) -> str | None:
    """The first key given twice in one mapping under ``node`` (depth first), as the one-line refusal."""
    if id(node) in seen:  # an alias: already walked
        return None
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], yaml.Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                # keys merged in with << may be overridden: only keys written in this mapping count
                key = (key_node.tag, key_node.value)
                if key in first:
                    one, two = first[key].start_mark, key_node.start_mark
                    where = (f"at lines {one.line + 1} and {two.line + 1}" if one.line != two.line else
                             f"on line {one.line + 1} (columns {one.column + 1} and {two.column + 1})")
                    return (f"{_where(source, two)}: key {key_node.value!r} is given twice in one mapping, {where} "
                            "(YAML would keep only the last, silently): delete one of them")
                first[key] = key_node
            for child in (key_node, value_node):
                found = _duplicate_key(child, source, seen)
                if found:
                    return found
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            found = _duplicate_key(child, source, seen)
            if found:
                return found
    return None


def check_yaml(text: str, source: str | Path = "<string>", *, error: type[Exception] = ConfigError) -> None:
    """Refuse YAML ``text`` (from ``source``, for the message) that does not parse, or that gives a key twice in
    one mapping: ``error`` with one line ``source:line:col: problem`` (a repeated key: both its lines)."""
    try:
        for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
            problem = _duplicate_key(document, source, set()) if document is not None else None
            if problem:
                raise error(problem)
    except yaml.YAMLError as err:
        raise error(yaml_problem(err, source)) from err


def load_yaml(path: str | Path, *, error: type[Exception] = ConfigError) -> Any:
    """The YAML file at ``path``, read with ``yaml.safe_load``'s rules after :func:`check_yaml` (a syntax error or a
    repeated key raises ``error`` with one line naming ``path:line:col``)."""
    path = Path(path)
    text = path.read_text()
    check_yaml(text, path, error=error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:  # a value that parses but does not construct (e.g. an unknown tag)
        raise error(yaml_problem(err, path)) from err


def merge_settings(layers: Collection[Mapping], *, groups: Mapping[str, type], top: Collection[str],
                   flat: Mapping[str, tuple[str, str]], error: type[Exception] = ValueError,
                   what: str = "setting") -> dict:
    """The arguments ``{top-level name: value, group name: options}`` of ``layers``.

    ``groups``: argument name -> its frozen options dataclass. ``top``: the names that are not in a group.
    ``flat``: flat name -> (group, field). A group given as a value that is not a mapping or an options object
    is read as its flat name (``class_weighting="loss"``). Unknown names raise ``error`` with one line.
    """
    values, fields = {}, {group: {} for group in groups}
    for layer in layers:
        for key, value in dict(layer).items():
            if key in groups and (value is None or isinstance(value, Mapping) or dataclasses.is_dataclass(value)):
                fields[key].update(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else dict(value or {}))
            elif key in flat:
                group, name = flat[key]
                fields[group][name] = value
            elif key in top:
                values[key] = value
            else:
                raise error(f"unknown {what} {key!r}; the settings are {', '.join(top)} and the groups "
                            f"{', '.join(groups)}")
    for group, cls in groups.items():
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(fields[group]) - set(names))
        if unknown:
            raise error(f"unknown {what} {unknown[0]!r} in {group}; {group} has {', '.join(names)}")
        values[group] = cls(**fields[group])
    return values

"""Settings in small groups: how a layered set of mappings becomes a class's arguments.

A data module and a model take a few top-level settings and a few frozen option dataclasses (a config's
``split: {block: MS}``, LightningCLI's ``--data.split.block MS``). :func:`merge_settings` builds those
arguments from layers (a config section, a checkpoint's saved hyperparameters, changes), later layers winning
field by field, with groups given as mappings or option objects, or field by field under the flat names that
checkpoints used before the settings were grouped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping


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

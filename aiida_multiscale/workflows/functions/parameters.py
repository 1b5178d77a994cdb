"""The ``parameters`` input of the MOOSE rungs: defaults filled in, unknown keys and out-of-range numbers refused.

The FEM slab, the elastic RVE and the crystal-plasticity RVE take a flat ``parameters`` Dict of numbers with a
default for every key; they check it the same way, here, so that a message names the same things in every rung.
"""

from __future__ import annotations

from aiida import orm

__all__ = ('check_parameter_ranges', 'fill_defaults')


def fill_defaults(node: orm.Dict | dict | None, defaults: dict) -> dict:
    """The ``parameters`` (a Dict, a dict or None) over a copy of ``defaults``."""
    values = dict(defaults)
    values.update(node.get_dict() if isinstance(node, orm.Dict) else (node or {}))
    return values


def check_parameter_ranges(values: dict, defaults: dict, ranges: dict, hints: dict | None = None) -> str | None:
    """The first problem of ``values``: a key not in ``defaults``, or a value outside its ``ranges`` entry.

    :param ranges: ``{key: (low, high)}``, ``low`` excluded, ``high`` included; the value must be a number (not bool).
    :param hints: ``{key: text}`` appended to the out-of-range message of that key.
    :returns: the message (``parameters: ...``), or None.
    """
    unknown = set(values) - set(defaults)
    if unknown:
        return f'parameters: unknown keys {sorted(unknown)}; allowed: {", ".join(defaults)}'
    for key, (low, high) in ranges.items():
        if key in values:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                hint = (hints or {}).get(key, '')
                return f'parameters: {key} = {value!r} must be a number in ({low}, {high}]{hint}'
    return None

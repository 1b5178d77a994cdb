"""One pint unit registry for the whole package, and the conversions the bridges need."""

from __future__ import annotations

import functools
import math

import pint

__all__ = ('ureg', 'parse_unit', 'convert')


@functools.lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    # One registry only: pint quantities from different registries cannot be combined.
    return pint.UnitRegistry()


ureg = _registry()


def parse_unit(unit: str) -> pint.Unit:
    """Return the pint unit for ``unit`` or raise ``ValueError`` naming the string that could not be read.

    ``'1'`` and ``''`` both mean dimensionless.
    """
    if not isinstance(unit, str):
        raise ValueError(f'a unit must be a string, got {type(unit).__name__}')
    text = unit.strip() or 'dimensionless'
    if text == '1':
        text = 'dimensionless'
    try:
        return ureg.Unit(text)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError, TypeError) as exc:
        raise ValueError(
            f'unknown unit {unit!r}: write it as pint understands it, e.g. "GPa", "J/m^2", "angstrom"'
        ) from exc
    except Exception as exc:  # pint raises assorted parser errors for garbage strings
        raise ValueError(f'unknown unit {unit!r}: {exc}') from exc


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a plain number between units; raises ``ValueError`` if the dimensions differ."""
    try:
        result = (value * parse_unit(from_unit)).to(parse_unit(to_unit)).magnitude
    except pint.errors.DimensionalityError as exc:
        raise ValueError(f'cannot convert {from_unit!r} to {to_unit!r}: the dimensions differ') from exc
    return float(result)


def is_finite_number(value) -> bool:
    """True for a finite real int/float (bools excluded: ``True`` is not a physical quantity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

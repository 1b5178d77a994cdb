"""One pint unit registry and the physical constants of the whole package: no other module writes a unit factor."""

from __future__ import annotations

import functools
import math
import numbers
import typing as t

if t.TYPE_CHECKING:
    import pint

__all__ = ('BOLTZMANN_EV', 'convert', 'factor', 'is_finite_number', 'parse_unit', 'ureg')  # noqa: F822 (made lazily)


@functools.lru_cache(maxsize=1)
def _registry() -> pint.UnitRegistry:
    # One registry only: pint quantities from different registries cannot be combined.  Built on first use, not on
    # import: it takes a large part of a second, which every `aiida-multiscale` command would pay at start-up.
    import pint

    return pint.UnitRegistry()


def __getattr__(name: str):
    # ``ureg`` (the registry) and ``BOLTZMANN_EV`` (Boltzmann's constant in eV/K, CODATA 2018, exact in the 2019 SI,
    # from pint's own constants: the only one in the package) are made on first access.
    if name == 'ureg':
        return _registry()
    if name == 'BOLTZMANN_EV':
        value = float((1 * _registry().boltzmann_constant).to('eV/K').magnitude)
        globals()['BOLTZMANN_EV'] = value
        return value
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def parse_unit(unit: str) -> pint.Unit:
    """Return the pint unit for ``unit`` or raise ``ValueError`` naming the string that could not be read.

    ``'1'`` and ``''`` both mean dimensionless.
    """
    if not isinstance(unit, str):
        raise ValueError(f'a unit must be a string, got {type(unit).__name__}')
    text = unit.strip() or 'dimensionless'
    if text == '1':
        text = 'dimensionless'
    import pint

    try:
        return _registry().Unit(text)
    except (pint.errors.UndefinedUnitError, pint.errors.DefinitionSyntaxError, AttributeError, TypeError) as exc:
        raise ValueError(
            f'unknown unit {unit!r}: write it as pint understands it, e.g. "GPa", "J/m^2", "angstrom"'
        ) from exc
    except Exception as exc:  # pint raises assorted parser errors for garbage strings
        raise ValueError(f'unknown unit {unit!r}: {exc}') from exc


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a plain number between units; raises ``ValueError`` if the dimensions differ."""
    import pint

    try:
        result = (value * parse_unit(from_unit)).to(parse_unit(to_unit)).magnitude
    except pint.errors.DimensionalityError as exc:
        raise ValueError(f'cannot convert {from_unit!r} to {to_unit!r}: the dimensions differ') from exc
    return float(result)


def is_finite_number(value) -> bool:
    """True for a finite real number: int, float or a numpy scalar such as ``float32`` (which is not a ``float``).

    Bools are excluded (``True`` is not a physical quantity), and so are arrays: a quantity is one number.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@functools.lru_cache(maxsize=64)
def factor(from_unit: str, to_unit: str) -> float:
    """The number that converts ``from_unit`` into ``to_unit`` (e.g. ``factor('eV/angstrom^2', 'J/m^2')``), cached.

    A factor that is a power of ten (SI prefixes: ``factor('m', 'nm')``) is returned exactly: pint divides by the
    prefix, and ``1 / 1e-9`` is ``999999999.9999999``, which would put round-off into every converted length.
    """
    value = convert(1.0, from_unit, to_unit)
    if value:
        power = float(f'1e{round(math.log10(abs(value)))}')
        if math.isclose(abs(value), power, rel_tol=1e-14):
            value = math.copysign(power, value)
    return value

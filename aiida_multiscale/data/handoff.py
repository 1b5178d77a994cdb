"""``HandoffData``: named physical quantities passed from one scale to the next, each with unit, std and note."""

from __future__ import annotations

import math
import re
import typing as t

from aiida import orm

from aiida_multiscale.physics.units import convert, is_finite_number, parse_unit

__all__ = ('HandoffData', 'Quantity')

_NAME = re.compile(r'^[a-z][a-z0-9_]*$')


class Quantity(t.NamedTuple):
    """One physical quantity: value in ``unit``, standard uncertainty ``std`` (same unit, None if unknown), note."""

    value: float
    unit: str
    std: float | None = None
    note: str = ''

    @property
    def relative_std(self) -> float | None:
        """``std / |value|``; None when the std is unknown, ``inf`` for a zero value with a finite std."""
        if self.std is None:
            return None
        if self.value == 0:
            return math.inf if self.std > 0 else 0.0
        return self.std / abs(self.value)

    def to(self, unit: str) -> Quantity:
        """Return this quantity converted to ``unit`` (value and std alike), via pint."""
        value = convert(self.value, self.unit, unit)
        std = None if self.std is None else abs(convert(self.std, self.unit, unit) - convert(0.0, self.unit, unit))
        return Quantity(value, unit, std, self.note)

    def as_dict(self) -> dict:
        return {'value': self.value, 'unit': self.unit, 'std': self.std, 'note': self.note}


def validate_quantity(name: str, value, unit: str, std=None, note: str = '') -> Quantity:
    """Check one quantity and return it normalised; ``ValueError`` names the quantity and what is wrong."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f'quantity name {name!r} must be snake_case (lower-case letters, digits, underscores)')
    if not is_finite_number(value):
        raise ValueError(f'quantity {name!r}: value must be a finite real number, got {value!r}')
    try:
        parse_unit(unit)
    except ValueError as exc:
        raise ValueError(f'quantity {name!r}: {exc}') from exc
    if std is not None:
        if not is_finite_number(std) or std < 0:
            raise ValueError(f'quantity {name!r}: std must be None (unknown) or a finite number >= 0, got {std!r}')
        std = float(std)
    if not isinstance(note, str):
        raise ValueError(f'quantity {name!r}: note must be a string')
    return Quantity(float(value), unit, std, note)


class HandoffData(orm.Data):
    """Named physical quantities handed from one scale to the next: ``{name: {value, unit, std, note}}``.

    Why a dedicated type rather than a ``Dict``: every number that crosses a scale must carry its unit (checked with
    pint, so ``'GPa'`` and ``'J/m^2'`` are real units, not labels) and its uncertainty, and the graph must show which
    bridge made it and between which scales.  The node is immutable once stored, like every AiiDA data node.

    Besides the quantities, optional attributes describe the handoff itself: ``bridge`` (the bridge calcfunction of
    :mod:`aiida_multiscale.bridges` that handed it from one scale to the next) or, for a node that is not a handoff
    between scales (a rung's own fit, an assumption entered by the user), ``producer`` (what made it, e.g.
    ``fit_equation_of_state``, ``assumption``); ``from_scale`` and ``to_scale`` (``dft``, ``md``, ``mesoscale``,
    ``fem``, ``macro``), and ``metadata``: a JSON dict of how the numbers were obtained (cutoffs, k-mesh, pseudo md5).
    """

    def __init__(
        self,
        quantities: t.Mapping[str, t.Mapping] | None = None,
        *,
        bridge: str | None = None,
        producer: str | None = None,
        from_scale: str | None = None,
        to_scale: str | None = None,
        metadata: t.Mapping | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.base.attributes.set('quantities', {})
        if metadata is not None:
            if not isinstance(metadata, t.Mapping):
                raise ValueError('metadata must be a JSON-serialisable dict')
            # Provenance details that travel with the numbers (cutoffs, k-mesh, pseudo md5, potential file ...).
            self.base.attributes.set('metadata', dict(metadata))
        if bridge is not None and producer is not None:
            raise ValueError('give either bridge (a handoff between scales) or producer (anything else), not both')
        pairs = (('bridge', bridge), ('producer', producer), ('from_scale', from_scale), ('to_scale', to_scale))
        for key, value in pairs:
            if value is not None:
                self.base.attributes.set(key, str(value))
        for name, spec in (quantities or {}).items():
            if isinstance(spec, Quantity):
                spec = spec._asdict()
            if not isinstance(spec, t.Mapping) or 'value' not in spec or 'unit' not in spec:
                raise ValueError(f'quantity {name!r} must be a mapping with at least "value" and "unit"')
            unknown = set(spec) - {'value', 'unit', 'std', 'note'}
            if unknown:
                raise ValueError(
                    f'quantity {name!r} has unknown fields {sorted(unknown)}; allowed: value, unit, std, note'
                )
            self.set_quantity(name, spec['value'], spec['unit'], spec.get('std'), spec.get('note', ''))

    # -- writing ---------------------------------------------------------------------------------------------------
    def set_quantity(self, name: str, value, unit: str, std=None, note: str = '') -> None:
        """Add or replace one quantity (only before the node is stored)."""
        quantity = validate_quantity(name, value, unit, std, note)
        quantities = dict(self.base.attributes.get('quantities', {}))
        quantities[name] = quantity.as_dict()
        self.base.attributes.set('quantities', quantities)

    # -- reading ---------------------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the quantities, in insertion order."""
        return list(self.base.attributes.get('quantities', {}))

    @property
    def quantities(self) -> dict[str, dict]:
        """A copy of all quantities as plain dicts ``{name: {value, unit, std, note}}``."""
        return {name: dict(spec) for name, spec in self.base.attributes.get('quantities', {}).items()}

    @property
    def metadata(self) -> dict:
        """Provenance details that travel with the numbers, e.g. DFT cutoffs, k-mesh, smearing and pseudo md5."""
        return dict(self.base.attributes.get('metadata', {}))

    @property
    def bridge(self) -> str | None:
        """The bridge calcfunction that handed these quantities from one scale to the next (None: not a handoff)."""
        return self.base.attributes.get('bridge', None)

    @property
    def producer(self) -> str | None:
        """What made the node: its bridge, or the ``producer`` of a node that is not a handoff between scales."""
        return self.base.attributes.get('producer', None) or self.bridge

    @property
    def from_scale(self) -> str | None:
        return self.base.attributes.get('from_scale', None)

    @property
    def to_scale(self) -> str | None:
        return self.base.attributes.get('to_scale', None)

    def __contains__(self, name: str) -> bool:
        return name in self.base.attributes.get('quantities', {})

    def __getitem__(self, name: str) -> Quantity:
        return self.get_quantity(name)

    def get_quantity(self, name: str, unit: str | None = None) -> Quantity:
        """Return a quantity, converted to ``unit`` if given.  ``KeyError`` lists the names that exist."""
        quantities = self.base.attributes.get('quantities', {})
        if name not in quantities:
            raise KeyError(f'{name!r} is not in this handoff; it holds {sorted(quantities)}')
        spec = quantities[name]
        quantity = Quantity(spec['value'], spec['unit'], spec.get('std'), spec.get('note', ''))
        return quantity.to(unit) if unit else quantity

    def value(self, name: str, unit: str | None = None) -> float:
        """Shortcut for ``get_quantity(name, unit).value``."""
        return self.get_quantity(name, unit).value

    def summary(self) -> dict[str, dict]:
        """``{name: {value, unit, std}}``: the form the CLI's ``--json`` output uses."""
        return {name: {k: spec[k] for k in ('value', 'unit', 'std')} for name, spec in self.quantities.items()}

    def __str__(self) -> str:
        parts = []
        for name, spec in self.quantities.items():
            std = '' if spec['std'] is None else f' +/- {spec["std"]:.4g}'
            parts.append(f'{name} = {spec["value"]:.6g}{std} {spec["unit"]}')
        return f'{super().__str__()} [{", ".join(parts)}]'

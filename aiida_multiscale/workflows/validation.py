"""Checks of the chain's inputs, shared by its port validators, its protocol builder and the command line.

They run before anything is submitted, so that an element the chain cannot run, an anneal above the melting point or
a pseudopotential family without the element is refused with a message that names the fix, not a failed rung.
"""

from __future__ import annotations

import typing as t

from aiida import orm
from aiida.plugins import WorkflowFactory

from aiida_multiscale.bridges.md_to_mesoscale import ASSUMPTION_UNITS
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.physics.elements import MELTING_POINTS

__all__ = (
    'message_of',
    'check_anneal',
    'check_element',
    'check_potential_species',
    'check_pseudo_family',
    'validate_assumptions',
    'validate_chain_inputs',
)


def check_element(element) -> str | None:
    """None if ``element`` is a chemical symbol of an fcc metal, else a message naming it and the fix.

    The chain's MD rung builds fcc cells and an fcc bicrystal, so a bcc or hcp element is refused here, before its
    pseudopotential or potential is looked for (which would name a missing file instead of the reason).
    """
    from ase.data import chemical_symbols

    from aiida_multiscale.engines.lammps import settings as md_settings

    if not isinstance(element, str) or element not in chemical_symbols[1:]:
        return (
            f'element: {element!r} is not a chemical symbol; give one such as "Al", "Cu" or "Ni" (capital first letter)'
        )
    return message_of(md_settings.check_element, element)


def check_anneal(element: str | None, temperature: float, anneal_time: float) -> str | None:
    """None if the anneal makes sense: t > 0, 0 K < T < T_melt (when the melting point is known)."""
    if not anneal_time > 0:
        return f'anneal_time = {anneal_time:g} s: the anneal time must be > 0 s'
    if not temperature > 0:
        return f'temperature = {temperature:g} K: the anneal temperature must be > 0 K'
    melting = MELTING_POINTS.get(element)
    if melting is not None and temperature >= melting:
        return (
            f'temperature = {temperature:g} K is at or above the melting point of {element} ({melting:g} K, CRC '
            'Handbook): grain growth is a solid-state process; choose a lower temperature'
        )
    return None


def message_of(check, *args, prefix: str = '') -> str | None:
    """A port validator's answer from a pure check of :mod:`aiida_multiscale.engines`: its error's text, or None."""
    try:
        check(*args)
    except ValueError as exc:
        return f'{prefix}{exc}'
    return None


def check_pseudo_family(elements: t.Iterable[str], label: str) -> str | None:
    """None if the aiida-pseudo family ``label`` exists and has a pseudopotential for every one of ``elements``."""
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    query = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}, subclassing=True)
    family = query.first(flat=True)
    if family is None:
        labels = orm.QueryBuilder().append(PseudoPotentialFamily, project='label', subclassing=True).all(flat=True)
        return (
            f'pseudo_family: no pseudopotential family {label!r} (available: {", ".join(sorted(labels)) or "none"}); '
            'create it with `aiida-multiscale setup` or `aiida-pseudo install family FOLDER LABEL -P pseudo.upf`'
        )
    missing = [element for element in elements if element not in family.elements]
    if missing:
        return (
            f'pseudo_family: family {label!r} has no pseudopotential for {", ".join(missing)} (it has '
            f'{", ".join(sorted(family.elements))}): choose another family or add the UPF file to it'
        )
    return None


def check_potential_species(element: str, potential) -> str | None:
    """None if the LAMMPS potential lists ``element`` among its species (or lists none)."""
    species = potential.base.attributes.get('species', None)
    if species and element not in species:
        return (
            f'md.potential: the potential {potential.filename!r} is for {", ".join(species)}, not {element!r}; give a '
            'potential for this element'
        )
    return None


def _assumption(assumptions: HandoffData, name: str) -> float:
    return assumptions.get_quantity(name, ASSUMPTION_UNITS[name]).value


def validate_assumptions(node, _=None):
    """The assumed inputs must all be there, in convertible units."""
    missing = [name for name in ASSUMPTION_UNITS if name not in node]
    if missing:
        return f'assumptions: missing {missing}; every one of {list(ASSUMPTION_UNITS)} needs a value, unit and std'
    for name, unit in ASSUMPTION_UNITS.items():
        try:
            node.get_quantity(name, unit)
        except ValueError as exc:
            return f'assumptions: {name} must be convertible to {unit}: {exc}'
    return None


def validate_chain_inputs(inputs, _=None):
    """Element, anneal and the element's pseudopotential and potential, before anything is submitted."""
    element = inputs['element'].value if 'element' in inputs else None
    if element is not None and (message := check_element(element)):
        return message
    assumptions = inputs.get('assumptions')
    if assumptions is not None and validate_assumptions(assumptions) is None:
        message = check_anneal(
            element, _assumption(assumptions, 'temperature'), _assumption(assumptions, 'anneal_time')
        )
        if message:
            return message
    family = inputs.get('dft', {}).get('pseudo_family')
    if element is not None and family is not None and (message := check_pseudo_family([element], family.value)):
        return message
    potential = inputs.get('md', {}).get('potential')
    if element is not None and potential is not None and (message := check_potential_species(element, potential)):
        return message
    # The DFT and MD rungs' own cross-checks need the element, which their namespaces exclude: run them here with it.
    for namespace in ('dft', 'md'):
        validator = WorkflowFactory(f'multiscale.{namespace}').spec().inputs.validator
        if element is None or validator is None or namespace not in inputs:
            continue
        message = validator({**inputs[namespace], 'element': inputs['element']}, None)
        if message:
            return f'{namespace}.{message}'
    return None

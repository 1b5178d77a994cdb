"""Checks of the chain's inputs, shared by its port validators, its protocol builder and the command line.

They run before anything is submitted, so that an element the chain cannot run, an anneal above the melting point or
a pseudopotential family without the element is refused with a message that names the fix, not a failed rung.
"""

from __future__ import annotations

import typing as t

from aiida import orm
from aiida.plugins import WorkflowFactory

from aiida_multiscale.bridges.md_to_mesoscale import ASSUMED_MOBILITY, ASSUMPTION_UNITS, REQUIRED_ASSUMPTIONS
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.physics.elements import MELTING_POINTS

__all__ = (
    'DEFAULT_PSEUDO_FAMILY',
    'FALLBACK_PSEUDO_FAMILY',
    'message_of',
    'check_anneal',
    'check_cutoffs',
    'check_element',
    'check_potential_species',
    'check_pseudo_family',
    'cutoffs_source',
    'default_pseudo_family',
    'dft_metadata_notes',
    'fallback_note',
    'load_pseudo_family',
    'recommended_cutoffs',
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


def check_anneal(
    element: str | None, temperature: float, anneal_time: float, initial_grain_size: float | None = None
) -> str | None:
    """None if the anneal makes sense: t > 0, 0 K < T < T_melt (when the melting point is known), d0 >= 10 nm."""
    from aiida_multiscale.physics.grain_growth import MIN_INITIAL_GRAIN_SIZE

    if initial_grain_size is not None and not initial_grain_size >= MIN_INITIAL_GRAIN_SIZE:
        return (
            f'initial_grain_size = {initial_grain_size:g} m: the starting mean grain size must be >= '
            f'{MIN_INITIAL_GRAIN_SIZE:g} m (a few boundary widths; below it normal grain growth by curvature does '
            'not apply)'
        )
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


#: The DFT rung's family when none is given: PBE (the functional of the all-electron references and of most of the
#: literature) wherever it has the elements ...
DEFAULT_PSEUDO_FAMILY = 'multiscale/pbe'
#: ... else LDA (Debian's folder has no PBE file for Al, Ag, Au, Pd), stated by the command line and the handoff.
FALLBACK_PSEUDO_FAMILY = 'multiscale/lda'


def load_pseudo_family(label: str):
    """The aiida-pseudo family (any subclass: cutoffs, SSSP, PseudoDojo) of that label, or None."""
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    query = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}, subclassing=True)
    return query.first(flat=True)


def default_pseudo_family(elements: t.Iterable[str]) -> str:
    """:data:`DEFAULT_PSEUDO_FAMILY` if it has every one of ``elements``, else :data:`FALLBACK_PSEUDO_FAMILY`."""
    family = load_pseudo_family(DEFAULT_PSEUDO_FAMILY)
    if family is not None and set(elements) <= set(family.elements):
        return DEFAULT_PSEUDO_FAMILY
    return FALLBACK_PSEUDO_FAMILY


def fallback_note(elements: t.Iterable[str], label: str) -> str | None:
    """The sentence that states an LDA fallback (``label`` is the fallback family and the PBE one lacks an element)."""
    if label != FALLBACK_PSEUDO_FAMILY:
        return None
    family = load_pseudo_family(DEFAULT_PSEUDO_FAMILY)
    have = set(family.elements) if family is not None else set()
    missing = sorted(set(elements) - have)
    if not missing:
        return None
    from aiida_multiscale.engines.qe.functionals import FUNCTIONAL_BIAS

    return (
        f'{DEFAULT_PSEUDO_FAMILY!r} has no pseudopotential for {", ".join(missing)}: using the LDA family '
        f'{FALLBACK_PSEUDO_FAMILY!r}. {FUNCTIONAL_BIAS["lda"]}'
    )


def recommended_cutoffs(label: str, elements: t.Iterable[str]) -> tuple[float, float, str] | None:
    """``(ecutwfc, ecutrho, stringency)`` in Ry that the family recommends for the elements (the largest over them).

    None for a family without recommended cutoffs (a plain ``pseudo.family``, or a cutoffs family with none set).
    This is what aiida-quantumespresso's ``PwBaseWorkChain.get_builder_from_protocol`` does with a cutoffs family.
    """
    from aiida_pseudo.groups.mixins import RecommendedCutoffMixin

    family = load_pseudo_family(label)
    if not isinstance(family, RecommendedCutoffMixin):
        return None
    try:
        stringency = family.get_default_stringency()
        ecutwfc, ecutrho = family.get_recommended_cutoffs(elements=tuple(elements), stringency=stringency, unit='Ry')
    except ValueError:
        return None
    return float(ecutwfc), float(ecutrho), stringency


def cutoffs_source(system: t.Mapping, label: str, elements: t.Iterable[str]) -> str:
    """Where the SCF's ``SYSTEM.ecutwfc/ecutrho`` came from: the family's recommendation (times a factor) or the user.

    Read back from the numbers: cutoffs that are the family's recommended ones times one common factor (the
    protocol's ``cutoff_scale``) came from the family; any other pair was given in ``scf.pw.parameters``.
    """
    recommended = recommended_cutoffs(label, elements)
    given = 'given in scf.pw.parameters'
    if recommended is None or 'ecutwfc' not in system:
        return given
    ecutwfc, ecutrho, stringency = recommended
    scale = system['ecutwfc'] / ecutwfc
    if abs(system.get('ecutrho', 4 * system['ecutwfc']) / ecutrho - scale) > 1e-6:
        return given
    factor = '' if abs(scale - 1) < 1e-6 else f' x {scale:g} (protocol cutoff_scale)'
    return f'recommended by family {label!r} (stringency {stringency}){factor}'


def check_cutoffs(elements: t.Iterable[str], label: str, parameters: t.Mapping | None) -> str | None:
    """None if the SCFs have cutoffs: given in ``parameters`` (pw.x namelists); else a message naming both fixes."""
    if parameters is not None and 'ecutwfc' in parameters.get('SYSTEM', {}):
        return None
    if recommended_cutoffs(label, elements) is None:
        return (
            f'scf.pw.parameters.SYSTEM.ecutwfc is missing and the pseudopotential family {label!r} recommends no '
            'cutoffs: '
            'give SYSTEM.ecutwfc and ecutrho (Ry), or use a family with recommended cutoffs (an aiida-pseudo cutoffs '
            'family: SSSP or PseudoDojo from `aiida-pseudo install`, or multiscale/pbe from `aiida-multiscale setup`)'
        )
    return (
        'scf.pw.parameters.SYSTEM.ecutwfc is missing: build the inputs with DftWorkChain.get_builder_from_protocol(), '
        'which '
        f'takes the cutoffs that family {label!r} recommends, or give SYSTEM.ecutwfc and ecutrho (Ry)'
    )


def check_pseudo_family(elements: t.Iterable[str], label: str) -> str | None:
    """None if the aiida-pseudo family ``label`` exists and has a pseudopotential for every one of ``elements``."""
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    family = load_pseudo_family(label)
    if family is None:
        labels = orm.QueryBuilder().append(PseudoPotentialFamily, project='label', subclassing=True).all(flat=True)
        return (
            f'pseudo_family: no pseudopotential family {label!r} (available: {", ".join(sorted(labels)) or "none"}); '
            'create it with `aiida-multiscale setup`, or install one with `aiida-pseudo install sssp` (or '
            '`aiida-pseudo install family FOLDER LABEL -P pseudo.upf`)'
        )
    missing = [element for element in elements if element not in family.elements]
    if missing:
        return (
            f'pseudo_family: family {label!r} has no pseudopotential for {", ".join(missing)} (it has '
            f'{", ".join(sorted(family.elements))}): choose another family, or add the element with its converged '
            f'cutoffs: `aiida-multiscale pseudos converge --element {missing[0]} --family {label} --upf FILE.UPF`'
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
    """The assumed anneal must be there, M0 and Q both or neither, all in convertible units, with a positive mobility
    prefactor and reduction and a non-negative activation energy (refused here, before any rung runs, not by the
    bridge after MD)."""
    missing = [name for name in REQUIRED_ASSUMPTIONS if name not in node]
    if missing:
        return f'assumptions: missing {missing}; every one of {list(REQUIRED_ASSUMPTIONS)} needs a value, unit and std'
    if len([name for name in ASSUMED_MOBILITY if name in node]) == 1:
        return 'assumptions: give both mobility_prefactor and activation_energy (a mobility by hand) or neither'
    for name, unit in ASSUMPTION_UNITS.items():
        if name not in node:
            continue
        try:
            node.get_quantity(name, unit)
        except ValueError as exc:
            return f'assumptions: {name} must be convertible to {unit}: {exc}'
    if 'mobility_prefactor' in node:
        prefactor = _assumption(node, 'mobility_prefactor')
        if not prefactor > 0:
            return f'assumptions: mobility_prefactor = {prefactor:g} m^4/(J s) must be > 0 (the GB mobility M0)'
        energy = _assumption(node, 'activation_energy')
        if not energy >= 0:
            return f'assumptions: activation_energy = {energy:g} eV must be >= 0'
    if 'mobility_reduction' in node and not _assumption(node, 'mobility_reduction') > 0:
        return 'assumptions: mobility_reduction must be > 0 (1: the pure metal; < 1: solute drag or pinning)'
    return None


def validate_chain_inputs(inputs, _=None):
    """Element, anneal and the element's pseudopotential and potential, before anything is submitted."""
    element = inputs['element'].value if 'element' in inputs else None
    if element is not None and (message := check_element(element)):
        return message
    assumptions = inputs.get('assumptions')
    if assumptions is not None and validate_assumptions(assumptions) is None:
        message = check_anneal(
            element,
            _assumption(assumptions, 'temperature'),
            _assumption(assumptions, 'anneal_time'),
            _assumption(assumptions, 'initial_grain_size'),
        )
        if message:
            return message
    family = inputs.get('dft', {}).get('pseudo_family')
    if element is not None and family is not None and (message := check_pseudo_family([element], family.value)):
        return message
    if assumptions is not None and (message := _check_mobility_source(inputs.get('md', {}), assumptions)):
        return message
    potential = inputs.get('md', {}).get('potential')
    if element is not None and potential is not None and (message := check_potential_species(element, potential)):
        return message
    # The rungs' own cross-checks need the element, which their namespaces exclude: run them here with it (the FEM
    # rung gets it only with its crystal-plasticity inputs, as MultiscaleWorkChain.run_fem does).
    for namespace in ('dft', 'md', 'fem'):
        validator = WorkflowFactory(f'multiscale.{namespace}').spec().inputs.validator
        if element is None or validator is None or namespace not in inputs:
            continue
        given = {'element': inputs['element']} if namespace != 'fem' or inputs[namespace].get('plasticity') else {}
        message = validator({**inputs[namespace], **given}, None)
        if message:
            return f'{namespace}.{message}'
    return None


def dft_metadata_notes(system: t.Mapping, family: str, pseudos: t.Mapping) -> dict:
    """The handoff metadata that says where the cutoffs came from and, for LDA, the functional's known bias.

    ``cutoffs_source``: the family's recommendation (with its stringency and the protocol's factor) or the user's
    ``scf.pw.parameters``; ``functional_bias`` (LDA only): the known error with its primary source.
    """
    from aiida_multiscale.engines.qe.functionals import FUNCTIONAL_BIAS
    from aiida_multiscale.engines.qe.structures import guess_functional

    elements = sorted({pseudo.element for pseudo in pseudos.values()})
    notes = {'cutoffs_source': cutoffs_source(system, family, elements)}
    functionals = {guess_functional(pseudo.get_content()) for pseudo in pseudos.values()}
    if functionals & set(FUNCTIONAL_BIAS):
        notes['functional_bias'] = ' '.join(
            FUNCTIONAL_BIAS[name] for name in sorted(functionals & set(FUNCTIONAL_BIAS))
        )
    return notes


def _check_mobility_source(md: t.Mapping, assumptions: HandoffData) -> str | None:
    """The mobility comes from exactly one place: the MD rung's stage, or M0 and Q in the assumptions."""
    parameters = md.get('parameters')
    mobility = (parameters.get_dict() if parameters is not None else {}).get('mobility', {})
    computes = mobility.get('compute', True)
    by_hand = 'mobility_prefactor' in assumptions
    if computes and by_hand:
        return (
            'the mobility is given twice: the MD rung computes it (md.parameters.mobility.compute) and the assumptions '
            'hold mobility_prefactor and activation_energy; drop one (set md.parameters.mobility.compute = false to '
            'use the assumed M0 and Q)'
        )
    if not computes and not by_hand:
        return (
            "the MD rung's mobility stage is off (md.parameters.mobility.compute = false) and the assumptions hold no "
            'mobility_prefactor and activation_energy: give them, or let the MD rung compute the mobility'
        )
    return None

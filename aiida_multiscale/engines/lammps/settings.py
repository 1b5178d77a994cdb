"""The MD rung's settings (element, DFT handoff and thresholds, bulk and bicrystal sizes): the checks of its ports."""

from __future__ import annotations

import math
import typing as t

__all__ = (
    'check_dft_handoff',
    'check_mobility_parameters',
    'check_element',
    'check_parameters',
    'check_thresholds',
    'merge_parameters',
)


def check_element(symbol: str) -> None:
    """Raise ``ValueError`` unless ``symbol`` is fcc in its ground state: the bulk cell and the Sigma5 bicrystal are."""
    from ase.data import atomic_numbers, reference_states

    if symbol not in atomic_numbers:
        raise ValueError(f'element {symbol!r} is not a chemical symbol')
    state = reference_states[atomic_numbers[symbol]] or {}
    if state.get('symmetry') != 'fcc':
        raise ValueError(
            f'element {symbol!r} is {state.get("symmetry", "not a crystal")} in its ground state; the MD rung '
            'builds fcc cells and an fcc Sigma5(310)[001] bicrystal, so only fcc metals (Al, Cu, Ni, Ag, Au ...)'
        )


def check_dft_handoff(handoff: t.Mapping) -> None:
    """Raise ``ValueError`` unless ``handoff`` holds both ``eos`` (with a0) and ``elastic`` (with c11, c12, c44)."""
    if set(handoff) != {'eos', 'elastic'}:
        raise ValueError('dft: give both `eos` and `elastic` (the HandoffData outputs of DftWorkChain) or neither')
    if 'a0' not in handoff['eos']:
        raise ValueError(f'dft.eos has no a0 (it holds {handoff["eos"].names})')
    missing = [name for name in ('c11', 'c12', 'c44') if name not in handoff['elastic']]
    if missing:
        raise ValueError(f'dft.elastic lacks {missing} (it holds {handoff["elastic"].names})')


def check_thresholds(values: t.Mapping, allowed: t.Collection[str]) -> None:
    """Raise ``ValueError`` unless every threshold is a relative error > 0 for a quantity in ``allowed``."""
    for key, value in values.items():
        if key not in allowed:
            raise ValueError(f'thresholds: unknown quantity {key!r}; allowed: {", ".join(allowed)}')
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f'thresholds: {key} = {value!r} must be a relative error > 0 (e.g. 0.03 for 3 %)')


def merge_parameters(values: t.Mapping, defaults: t.Mapping) -> dict:
    """``values`` completed section by section (``bulk``, ``gb``) with ``defaults`` (new dicts)."""
    return {section: {**content, **values.get(section, {})} for section, content in defaults.items()}


def check_parameters(values: t.Mapping, defaults: t.Mapping) -> None:
    """Raise ``ValueError`` naming the first bad setting: unknown keys, sizes, strain set, cut-offs and tolerances.

    :param values: the settings given, ``{section: {key: value}}`` with a subset of the keys of ``defaults``.
    :param defaults: every allowed section and key with its default, filled in where ``values`` has none.
    """
    for section, content in values.items():
        if section not in defaults:
            raise ValueError(f'parameters: unknown section {section!r}; allowed: {", ".join(defaults)}')
        unknown = set(content) - set(defaults[section])
        if unknown:
            raise ValueError(
                f'parameters.{section}: unknown keys {sorted(unknown)}; allowed: {sorted(defaults[section])}'
            )
    merged = merge_parameters(values, defaults)
    bulk, gb = merged['bulk'], merged['gb']
    if not isinstance(bulk['repeats'], int) or bulk['repeats'] < 2:
        raise ValueError('parameters.bulk.repeats must be an integer >= 2 (the cubic cell is repeats^3 x 4 atoms)')
    strains = bulk['strains']
    if len(strains) < 2 or any(not isinstance(s, (int, float)) or s == 0 or abs(s) > 0.05 for s in strains):
        raise ValueError('parameters.bulk.strains: give at least two non-zero strains with |strain| <= 0.05')
    if sorted(strains) != sorted(-s for s in strains):
        raise ValueError('parameters.bulk.strains must be symmetric about zero (e.g. [-0.01, -0.005, 0.005, 0.01])')
    for key in ('repeats', 'size_check_repeats'):
        value = gb[key]
        if len(value) != 3 or any(not isinstance(n, int) or n < 1 for n in value):
            raise ValueError(f'parameters.gb.{key} must be three positive integers (nx, ny, nz), got {value!r}')
    if any(s < b for s, b in zip(gb['size_check_repeats'], gb['repeats'])) or gb['size_check_repeats'] == gb['repeats']:
        raise ValueError(
            'parameters.gb.size_check_repeats must be larger than parameters.gb.repeats in at least one direction'
        )
    if len(gb['shifts']) != 2 or any(not isinstance(n, int) or n < 1 for n in gb['shifts']):
        raise ValueError('parameters.gb.shifts must be two positive integers (grid points along x and y)')
    if not gb['overlap_cutoffs'] or any(not isinstance(c, (int, float)) or c <= 0 for c in gb['overlap_cutoffs']):
        raise ValueError('parameters.gb.overlap_cutoffs must be a non-empty list of distances > 0 (angstrom)')
    if not 0 < gb['min_distance_factor'] < 1:
        raise ValueError(
            'parameters.gb.min_distance_factor must be in (0, 1) (fraction of the nearest-neighbour distance)'
        )
    if not 0 < gb['size_tolerance'] < 1:
        raise ValueError('parameters.gb.size_tolerance must be a relative difference in (0, 1), e.g. 0.02')
    if not isinstance(gb['size_check_candidates'], int) or gb['size_check_candidates'] < 1:
        raise ValueError('parameters.gb.size_check_candidates must be an integer >= 1')
    if 'mobility' in merged:
        check_mobility_parameters(merged['mobility'])


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_mobility_parameters(mobility: t.Mapping) -> None:
    """Raise ``ValueError`` naming the first bad setting of the mobility stage (``parameters.mobility``)."""
    where = 'parameters.mobility'
    if not isinstance(mobility['compute'], bool):
        raise ValueError(f'{where}.compute must be true or false (false: a grain-boundary-energy-only run)')
    temperatures = mobility['homologous_temperatures']
    if (
        not isinstance(temperatures, (list, tuple))
        or len(temperatures) < 2
        or any(not _number(x) or not 0.3 <= x < 1.0 for x in temperatures)
        or len(set(temperatures)) != len(temperatures)
    ):
        raise ValueError(
            f'{where}.homologous_temperatures: give two or more distinct fractions of the melting point in [0.3, 1), '
            f'e.g. [0.78, 0.86, 0.94] (three or more for a fit with a degree of freedom), got {temperatures!r}'
        )
    melting_point = mobility['melting_point']
    if melting_point is not None and (not _number(melting_point) or melting_point <= 0):
        raise ValueError(f"{where}.melting_point must be null (the potential's) or a temperature > 0 K")
    u0 = mobility['u0']
    if not _number(u0) or not 0 < u0 <= 0.1:
        raise ValueError(
            f'{where}.u0 must be a driving energy in (0, 0.1] eV/atom (0.005-0.01 for a velocity linear in the force; '
            f'0.02 and more saturates it in Al), got {u0!r}'
        )
    repeats = mobility['repeats']
    if not isinstance(repeats, (list, tuple)) or len(repeats) != 3 or not all(_positive_int(n) for n in repeats):
        raise ValueError(f'{where}.repeats must be three positive integers (nx, ny, nz), got {repeats!r}')
    if repeats[2] < 3:
        raise ValueError(f'{where}.repeats: nz >= 3 (each grain must be thick enough for the boundaries to move)')
    for key in ('replicas', 'steps', 'sample_every', 'blocks', 'lattice_steps'):
        if not _positive_int(mobility[key]):
            raise ValueError(f'{where}.{key} must be an integer >= 1, got {mobility[key]!r}')
    if mobility['lattice_steps'] < 150:
        # render_lattice_constant_script samples every 10 steps; parse_lattice_file needs 3 samples per block of 5.
        raise ValueError(f'{where}.lattice_steps must be >= 150 (15 samples of a(T), 10 steps apart)')
    if not isinstance(mobility['equilibration_steps'], int) or mobility['equilibration_steps'] < 0:
        raise ValueError(f'{where}.equilibration_steps must be an integer >= 0')
    if mobility['blocks'] < 3:
        raise ValueError(f'{where}.blocks must be >= 3 (the velocity std is the spread of the block slopes)')
    if mobility['steps'] < 3 * mobility['blocks'] * mobility['sample_every']:
        raise ValueError(f'{where}: steps must cover at least 3 samples per block (steps >= 3 x blocks x sample_every)')
    for key in ('timestep', 'discard', 'min_thickness'):
        if not _number(mobility[key]) or mobility[key] < 0 or (key == 'timestep' and mobility[key] == 0):
            raise ValueError(f'{where}.{key} must be a number >= 0 ({"ps" if key != "min_thickness" else "A"})')
    if mobility['timestep'] > 0.005:
        raise ValueError(f'{where}.timestep must be <= 0.005 ps (2 fs conserves energy for Al with the force on)')
    if mobility['discard'] >= mobility['steps'] * mobility['timestep']:
        raise ValueError(f'{where}.discard ({mobility["discard"]} ps) must be shorter than the driven run')
    if not isinstance(mobility['linearity_check'], bool):
        raise ValueError(f'{where}.linearity_check must be true or false')

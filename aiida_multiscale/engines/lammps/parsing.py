"""Turn the ``results.dat`` and log of the MD rung's LAMMPS runs into numbers: a0, Cij, grain-boundary energies.

Pure functions on text, so they are tested on recorded outputs (``tests/fixtures/lammps``) without a database.
"""

from __future__ import annotations

import math
import re
import typing as t

from aiida_multiscale.physics.elasticity import cubic_elastic_constants
from aiida_multiscale.physics.units import factor

__all__ = (
    'UNCONVERGED_CRITERIA',
    'analyse_gb_scan',
    'elastic_constants',
    'gb_energy',
    'gb_unconverged_labels',
    'parse_bulk_results',
    'parse_gb_results',
    'stopping_criteria',
    'unconverged_minimisations',
)

#: LAMMPS stopping criteria that mean the minimiser gave up rather than converged.  "linesearch alpha is zero" and
#: "energy tolerance" / "force tolerance" are normal ends of a CG minimisation at machine precision.
UNCONVERGED_CRITERIA = ('max iterations', 'max force evaluations')


def stopping_criteria(log: str) -> list[str]:
    """Every ``Stopping criterion = ...`` of a LAMMPS log, in order.

    aiida-lammps 1.0.2 workaround: an unconverged minimisation still exits 0 and its parser keeps only the last
    criterion, so we read all of them from the log ourselves.
    """
    return [match.group(1).strip() for match in re.finditer(r'Stopping criterion = (.*)', log)]


def unconverged_minimisations(log: str) -> list[tuple[int, str]]:
    """``[(index, criterion)]`` of the minimisations in ``log`` that stopped without converging."""
    return [(i, c) for i, c in enumerate(stopping_criteria(log)) if any(bad in c for bad in UNCONVERGED_CRITERIA)]


def parse_bulk_results(text: str) -> dict:
    """``results.dat`` of the bulk script -> ``{natoms, a0, cohesive_energy, pressure, strains: [(mode, e, sxx, syy,
    szz, syz)]}`` (stresses in GPa, tension positive)."""
    result: dict[str, t.Any] = {'strains': []}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == 'strain':
            result['strains'].append((parts[1], *map(float, parts[2:7])))
        elif parts[0] in ('natoms',):
            result[parts[0]] = int(float(parts[1]))
        elif parts[0] in ('a0', 'cohesive_energy', 'pressure'):
            result[parts[0]] = float(parts[1])
    missing = [key for key in ('natoms', 'a0', 'cohesive_energy') if key not in result]
    if missing or not result['strains']:
        raise ValueError(f'bulk results are incomplete: missing {missing or "strain data"}')
    return result


def elastic_constants(strains: t.Sequence[tuple]) -> dict[str, tuple[float, float]]:
    """Cubic C11, C12, C44 in GPa with a standard uncertainty each, from the stress-strain records of the bulk script.

    C11 = d sigma_xx / d e_xx and C12 = d sigma_yy / d e_xx (= d sigma_zz / d e_xx) under normal strain;
    C44 = d sigma_yz / d gamma_yz under engineering shear; fitted by
    :func:`aiida_multiscale.physics.elasticity.cubic_elastic_constants`.
    """
    normal = sorted((s for s in strains if s[0] == 'xx'), key=lambda s: s[1])
    shear = sorted((s for s in strains if s[0] == 'yz'), key=lambda s: s[1])
    if len(normal) < 2 or len(shear) < 2:
        raise ValueError('need at least two normal and two shear strains')
    return cubic_elastic_constants(
        [s[1] for s in normal],
        [s[2] for s in normal],
        [s[3] for s in normal],
        [s[4] for s in normal],
        [s[1] for s in shear],
        [s[5] for s in shear],
    )


def parse_gb_results(text: str) -> list[dict]:
    """``results.dat`` of the grain-boundary script -> one dict per configuration."""
    records = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 9 and parts[0] == 'config':
            records.append(
                {
                    'label': parts[1],
                    'natoms': int(float(parts[2])),
                    'energy': float(parts[3]),
                    'lx': float(parts[4]),
                    'ly': float(parts[5]),
                    'lz': float(parts[6]),
                    'min_distance': float(parts[7]),
                    'pressure': float(parts[8]),
                }
            )
    return records


def gb_energy(energy: float, natoms: int, cohesive_energy: float, area: float, boundaries: int = 2) -> float:
    """Boundary energy in J/m^2: ``(E - N * (-E_coh)) / (boundaries * A)``, E in eV, A in angstrom^2."""
    return (energy + natoms * cohesive_energy) / (boundaries * area) * factor('eV/angstrom^2', 'J/m^2')


def gb_unconverged_labels(log: str, labels: t.Sequence[str], per_configuration: int = 4) -> list[str]:
    """Labels of the configurations (in script order) with a minimisation that stopped without converging.

    The grain-boundary script runs ``per_configuration`` minimisations per configuration, so the n-th stopping
    criterion of the log belongs to configuration ``n // per_configuration``.
    """
    bad = set()
    for index, _ in unconverged_minimisations(log):
        if index // per_configuration < len(labels):
            bad.add(labels[index // per_configuration])
    return [label for label in labels if label in bad]


def analyse_gb_scan(
    records: t.Sequence[dict], cohesive_energy: float, min_distance: float, unconverged: t.Collection[str] = ()
) -> dict:
    """Energies of all configurations, with those whose relaxed structure has atoms closer than ``min_distance``
    rejected (some EAMs collapse to unphysically dense, low-energy structures), and so are the ``unconverged`` ones.

    :returns: ``{'energies': {label: J/m^2}, 'valid': [labels by energy], 'rejected': [labels], 'minimum',
        'minimum_label', 'spread' (max - min of the valid ones), 'scan_std'}``, where ``scan_std`` is the gap between
        the lowest and the second-lowest *distinct* minimum found (0 if several starting points reached the same
        lowest structure, which is the sign of a well-sampled scan; that gap when only one did).
    """
    energies, rejected = {}, []
    for record in records:
        value = gb_energy(record['energy'], record['natoms'], cohesive_energy, record['lx'] * record['ly'])
        energies[record['label']] = value
        if not (record['min_distance'] >= min_distance) or not math.isfinite(value) or record['label'] in unconverged:
            rejected.append(record['label'])
    valid = sorted((label for label in energies if label not in rejected), key=energies.get)
    if not valid:
        return {'energies': energies, 'valid': [], 'rejected': rejected, 'minimum': None}
    lowest = energies[valid[0]]
    # Configurations within 0.1 mJ/m^2 of the lowest reached the same structure.
    same = [label for label in valid if energies[label] - lowest < 1e-4]
    others = [energies[label] for label in valid if energies[label] - lowest >= 1e-4]
    scan_std = 0.0 if len(same) > 1 or not others else others[0] - lowest
    return {
        'energies': energies,
        'valid': valid,
        'rejected': rejected,
        'minimum': lowest,
        'minimum_label': valid[0],
        'reached_by': len(same),
        'spread': energies[valid[-1]] - lowest,
        'scan_std': scan_std,
    }

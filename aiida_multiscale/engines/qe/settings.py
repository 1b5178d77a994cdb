"""The DFT rung's numerical settings (EOS grid, strain set, k-points): the checks behind its ``parameters`` port."""

from __future__ import annotations

import math
import typing as t

import numpy as np

__all__ = ('SMEARINGS', 'check_parameters', 'check_pw_parameters')


def check_parameters(values: t.Mapping, defaults: t.Mapping) -> None:
    """Raise ``ValueError`` with a message that says how to fix the first bad setting in ``values``.

    :param values: the settings given (a subset of the keys of ``defaults``).
    :param defaults: every allowed key with its default, filled in where ``values`` has none.
    """
    unknown = set(values) - set(defaults)
    if unknown:
        raise ValueError(f'parameters: unknown key(s) {sorted(unknown)}; allowed: {", ".join(sorted(defaults))}')
    merged = {**defaults, **values}
    points = merged['eos_points']
    if not isinstance(points, int) or points < 5 or points % 2 == 0:
        raise ValueError(
            f'parameters.eos_points must be an odd integer >= 5 (a centred 4-parameter fit), got {points!r}'
        )
    if not 0 < merged['eos_volume_range'] < 0.3:
        raise ValueError(
            f'parameters.eos_volume_range must be in (0, 0.3) (relative half-width), got {merged["eos_volume_range"]}'
        )
    if not isinstance(merged['eos_max_recentre'], int) or merged['eos_max_recentre'] < 0:
        raise ValueError('parameters.eos_max_recentre must be an integer >= 0')
    strains = merged['strains']
    if not isinstance(strains, list) or len(strains) < 2 or len(set(strains)) != len(strains):
        raise ValueError(
            'parameters.strains must be a list of at least two distinct strains, e.g. [-0.01, -0.005, 0, 0.005, 0.01]'
        )
    if any(abs(s) > 0.03 for s in strains):
        raise ValueError(
            'parameters.strains: keep |strain| <= 0.03, beyond that the stress is not linear in the strain'
        )
    if not np.allclose(sorted(strains), sorted(-s for s in strains)):
        raise ValueError(
            'parameters.strains must be symmetric about zero (the quadratic terms then cancel in the linear fit)'
        )
    if not 0 < merged['bulk_modulus_tolerance'] < 1:
        raise ValueError('parameters.bulk_modulus_tolerance must be a fraction in (0, 1), e.g. 0.05')
    mesh = merged['kpoints_mesh']
    if mesh is not None and (not isinstance(mesh, list) or len(mesh) != 3 or any(int(k) < 1 for k in mesh)):
        raise ValueError(f'parameters.kpoints_mesh must be None or three positive integers, got {mesh!r}')
    if mesh is None and not merged['kpoints_distance'] > 0:
        raise ValueError(
            'parameters.kpoints_distance must be > 0 (1/Angstrom, 2 pi included, as in aiida-quantumespresso)'
        )
    elastic_distance = merged['elastic_kpoints_distance']
    if elastic_distance is not None and not (isinstance(elastic_distance, (int, float)) and elastic_distance > 0):
        raise ValueError(
            f'parameters.elastic_kpoints_distance must be None or > 0 (1/Angstrom), got {elastic_distance!r}'
        )
    if not isinstance(merged['kpoints_convergence'], bool):
        raise ValueError('parameters.kpoints_convergence must be true or false')
    if not 0 < merged['kpoints_convergence_tolerance'] < 1:
        raise ValueError('parameters.kpoints_convergence_tolerance must be a fraction in (0, 1), e.g. 0.02')
    gpa = merged['kpoints_convergence_tolerance_gpa']
    if isinstance(gpa, bool) or not isinstance(gpa, (int, float)) or not gpa > 0:
        raise ValueError(f'parameters.kpoints_convergence_tolerance_gpa must be > 0 (GPa), e.g. 2.0, got {gpa!r}')
    if not isinstance(merged['kpoints_error_estimate'], bool):
        raise ValueError('parameters.kpoints_error_estimate must be true or false')
    if not isinstance(merged['kpoints_max_refinements'], int) or merged['kpoints_max_refinements'] < 1:
        raise ValueError('parameters.kpoints_max_refinements must be an integer >= 1')
    if not merged['kpoints_refinement_factor'] > 1.05:
        raise ValueError('parameters.kpoints_refinement_factor must be > 1.05 (each refinement must change the mesh)')


#: The smearing names pw.x 6.7 accepts (``SYSTEM.smearing``, case-insensitive); any other stops it in
#: ``set_occupations`` with "smearing ... unknown".
SMEARINGS = (
    'gaussian',
    'gauss',
    'methfessel-paxton',
    'm-p',
    'mp',
    'marzari-vanderbilt',
    'cold',
    'm-v',
    'mv',
    'fermi-dirac',
    'f-d',
    'fd',
)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_pw_parameters(parameters: t.Mapping | None) -> None:
    """Raise ``ValueError`` (message from the namelist on) for pw.x ``parameters`` the DFT rung cannot use.

    The pseudo families made by ``aiida-pseudo install family`` carry no recommended cutoffs, so ``ecutwfc`` must be
    given; every SCF of the rung is at a fixed cell, so ``calculation`` must be ``scf``.  The cutoffs and the smearing
    are checked as pw.x 6.7 checks them, so that a bad value stops here and not in the queue: ``ecutwfc`` > 0,
    ``ecutrho`` > ``ecutwfc`` (pw.x: "ecutrho <= ecutwfc?!?"), a known ``smearing`` and, with
    ``occupations = 'smearing'``, ``degauss`` > 0.
    """
    if parameters is None:
        return
    system = parameters.get('SYSTEM', {})
    if 'ecutwfc' not in system:
        raise ValueError(
            'SYSTEM.ecutwfc is missing: the pseudo family carries no recommended cutoffs, so set ecutwfc (and '
            'ecutrho), or build the inputs with DftWorkChain.get_builder_from_protocol()'
        )
    ecutwfc = system['ecutwfc']
    if not _is_number(ecutwfc) or ecutwfc <= 0:
        raise ValueError(f'SYSTEM.ecutwfc must be a number > 0 (Ry), got {ecutwfc!r}; e.g. 30 for Al.pz-vbc')
    if 'ecutrho' in system:
        ecutrho = system['ecutrho']
        if not _is_number(ecutrho) or ecutrho <= 0:
            raise ValueError(f'SYSTEM.ecutrho must be a number > 0 (Ry), got {ecutrho!r}; leave it out for 4 x ecutwfc')
        if ecutrho <= ecutwfc:
            raise ValueError(
                f'SYSTEM.ecutrho = {ecutrho:g} Ry must be larger than ecutwfc = {ecutwfc:g} Ry (pw.x stops otherwise): '
                'use 4 x ecutwfc for norm-conserving pseudopotentials, 8-12 x for ultrasoft or PAW ones'
            )
    smearing = system.get('smearing')
    if smearing is not None and (not isinstance(smearing, str) or smearing.lower() not in SMEARINGS):
        raise ValueError(f'SYSTEM.smearing {smearing!r} is unknown to pw.x; use one of {", ".join(SMEARINGS)}')
    if system.get('occupations') == 'smearing':
        degauss = system.get('degauss', 0.0)
        if not _is_number(degauss) or degauss <= 0:
            raise ValueError(
                f'SYSTEM.degauss must be a number > 0 (Ry) with occupations = "smearing", got {degauss!r}; e.g. 0.02'
            )
    calculation = parameters.get('CONTROL', {}).get('calculation', 'scf')
    if calculation != 'scf':
        raise ValueError(f'CONTROL.calculation must be "scf" (fixed cells), got {calculation!r}')

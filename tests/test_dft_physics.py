"""Pure physics of the DFT rung (no database, no pw.x): cubic cells, EOS fit and re-centring, stress-strain, Born."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest
from ase.build import bulk
from ase.eos import birchmurnaghan

from aiida_multiscale.engines.qe import elastic, parameters, settings, structures
from aiida_multiscale.physics import eos
from aiida_multiscale.physics.elasticity import born_stability_violations, bulk_modulus_from_cij

pytestmark = pytest.mark.unit

EV_A3_GPA = eos.EV_PER_ANGSTROM3_TO_GPA
PSEUDO_DIR = pathlib.Path('/usr/share/espresso/pseudo')


# -- structures -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(('element', 'lattice'), [('Al', 'fcc'), ('Cu', 'fcc'), ('Fe', 'bcc'), ('Ni', 'fcc')])
def test_reference_lattice(element, lattice):
    assert structures.reference_lattice(element)[0] == lattice


@pytest.mark.parametrize(('element', 'words'), [('Si', 'diamond'), ('Mg', 'hcp'), ('Xx', 'not a chemical symbol')])
def test_reference_lattice_rejects(element, words):
    with pytest.raises(structures.CubicStructureError, match=words):
        structures.reference_lattice(element)


def test_build_cubic_atoms_functional_scaling():
    """The LDA guess is 1.5 % below experiment (Al: 4.05 -> 3.99 A), so the first EOS grid brackets 3.96 A."""
    atoms = structures.build_cubic_atoms('Al', functional='lda')
    a0 = structures.conventional_lattice_parameter(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    assert a0 == pytest.approx(4.05 * 0.985, rel=1e-6)
    assert len(atoms) == 1


@pytest.mark.parametrize(
    ('atoms', 'a0'),
    [
        (bulk('Al', 'fcc', a=4.0), 4.0),
        (bulk('Al', 'fcc', a=4.0, cubic=True), 4.0),
        (bulk('Fe', 'bcc', a=2.87), 2.87),
        (bulk('NaCl', 'rocksalt', a=5.6), 5.6),
        (bulk('CsCl', 'cesiumchloride', a=4.1), 4.1),
    ],
)
def test_cubic_structures_accepted(atoms, a0):
    structures.check_cubic_structure(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    assert structures.conventional_lattice_parameter(
        atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers
    ) == pytest.approx(a0, rel=1e-9)


def test_non_cubic_rejected():
    atoms = bulk('Mg', 'hcp', a=3.2, c=5.2)
    with pytest.raises(structures.CubicStructureError, match='not cubic'):
        structures.check_cubic_structure(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    tetragonal = bulk('Al', 'fcc', a=4.0, cubic=True)
    tetragonal.set_cell(tetragonal.cell.array * [1, 1, 1.05], scale_atoms=True)
    with pytest.raises(structures.CubicStructureError, match='not cubic'):
        structures.check_cubic_structure(tetragonal.cell.array, tetragonal.get_scaled_positions(), tetragonal.numbers)


def test_rotated_cube_rejected():
    atoms = bulk('Al', 'fcc', a=4.0, cubic=True)
    atoms.rotate(30, 'z', rotate_cell=True)
    with pytest.raises(structures.CubicStructureError, match='not along Cartesian'):
        structures.check_cubic_structure(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)


def test_diamond_rejected_needs_internal_relaxation():
    atoms = bulk('Si', 'diamond', a=5.43)
    with pytest.raises(structures.CubicStructureError, match='inversion centre'):
        structures.check_cubic_structure(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)


@pytest.mark.parametrize(
    ('filename', 'functional'),
    [('Al.pz-vbc.UPF', 'lda'), ('Cu.pz-d-rrkjus.UPF', 'lda'), ('Cu.pbe-kjpaw.UPF', 'pbe'), ('Si.bhs', None)],
)
def test_guess_functional(filename, functional):
    path = PSEUDO_DIR / filename
    if not path.exists():
        pytest.skip(f'{path} not installed')
    guessed = structures.guess_functional(path.read_text(errors='replace'))
    if functional is None:
        assert guessed in {'lda', 'pbe', 'pbesol', 'unknown'}
    else:
        assert guessed == functional


# -- equation of state ------------------------------------------------------------------------------------------------
def _bm_energies(volumes, e0=-57.0, b0=82.9, bp=4.3, v0=15.52):
    return birchmurnaghan(np.asarray(volumes), e0, b0 / EV_A3_GPA, bp, v0)


def test_birch_murnaghan_recovers_parameters():
    volumes = eos.eos_grid(15.8, 7, 0.06)
    fit = eos.fit_birch_murnaghan(volumes, _bm_energies(volumes))
    assert fit['bracketed']
    assert fit['v0'] == pytest.approx(15.52, rel=1e-6)
    assert fit['b0'] == pytest.approx(82.9, rel=1e-5)
    assert fit['bp'] == pytest.approx(4.3, rel=1e-4)
    assert fit['e0'] == pytest.approx(-57.0, abs=1e-8)
    assert fit['b0_std'] < 1e-3


def test_birch_murnaghan_std_reflects_noise():
    """Noise of 0.2 meV on the energies gives a B0 std of the order of 1 GPa, and the true B0 within a few std."""
    rng = np.random.default_rng(4)
    volumes = eos.eos_grid(15.5, 7, 0.06)
    energies = _bm_energies(volumes) + rng.normal(0, 2e-4, size=7)
    fit = eos.fit_birch_murnaghan(volumes, energies)
    assert 0.1 < fit['b0_std'] < 10
    assert abs(fit['b0'] - 82.9) < 4 * fit['b0_std']
    assert abs(fit['v0'] - 15.52) < 4 * fit['v0_std']


@pytest.mark.parametrize('centre', [17.2, 14.0])
def test_unbracketed_grid_recentres_towards_minimum(centre):
    """A grid centred 10 % off V0 is not bracketed; the shift moves towards V0 by a whole number of steps."""
    volumes = eos.eos_grid(centre, 7, 0.06)
    energies = _bm_energies(volumes)
    fit = eos.fit_birch_murnaghan(volumes, energies)
    assert not fit['bracketed']
    shift = eos.recentre_grid(volumes, energies, fit)
    assert np.sign(shift) == np.sign(15.52 - centre)
    step = volumes[1] - volumes[0]
    new_volumes = volumes + shift * step
    new_fit = eos.fit_birch_murnaghan(new_volumes, _bm_energies(new_volumes))
    assert new_fit['bracketed'] or eos.recentre_grid(new_volumes, _bm_energies(new_volumes), new_fit) != 0
    assert abs(np.mean(new_volumes) - 15.52) < abs(centre - 15.52)


def test_bracketed_grid_is_not_moved():
    volumes = eos.eos_grid(15.6, 7, 0.06)
    energies = _bm_energies(volumes)
    assert eos.recentre_grid(volumes, energies, eos.fit_birch_murnaghan(volumes, energies)) == 0


def test_eos_grid_rejects_bad_settings():
    with pytest.raises(ValueError, match='at least 5'):
        eos.eos_grid(10, 3, 0.05)
    with pytest.raises(ValueError, match='eos_volume_range'):
        eos.eos_grid(10, 7, 0.8)


# -- stress-strain ----------------------------------------------------------------------------------------------------
def _stresses(deltas, c11, c12, c44, nonlinear=0.0, pressure=0.0):
    """Physical stress of a cubic crystal under elastic_strain(delta), with an even non-linear term and pre-stress."""
    result = []
    for d in deltas:
        s = np.zeros((3, 3))
        s[0, 0] = c11 * d + nonlinear * d**2
        s[1, 1] = s[2, 2] = c12 * d + 0.5 * nonlinear * d**2
        s[1, 2] = s[2, 1] = c44 * d + 0.3 * nonlinear * d**2
        result.append(s - pressure * np.eye(3))
    return np.array(result)


def test_strain_round_trip_from_cells():
    cell = bulk('Al', 'fcc', a=3.96).cell.array
    eps = elastic.elastic_strain(0.01)
    strained = cell @ (np.eye(3) + eps).T
    assert np.allclose(elastic.strain_from_cells(cell, strained), eps, atol=1e-12)


def test_cubic_fit_recovers_constants_despite_nonlinearity_and_prestress():
    deltas = [-0.01, -0.005, 0.0, 0.005, 0.01]
    strains = [elastic.elastic_strain(d) for d in deltas]
    fit = elastic.fit_cubic_elastic_constants(strains, _stresses(deltas, 117, 66, 30, nonlinear=-1000, pressure=0.4))
    assert fit['c11'] == pytest.approx(117, abs=1e-8)
    assert fit['c12'] == pytest.approx(66, abs=1e-8)
    assert fit['c44'] == pytest.approx(30, abs=1e-8)
    assert fit['residual_pressure'] == pytest.approx(0.4, abs=1e-6)
    assert fit['symmetry_error'] < 1e-8
    assert fit['c11_std'] < 1e-6


def test_cubic_fit_std_from_residuals():
    rng = np.random.default_rng(1)
    deltas = [-0.01, -0.005, 0.0, 0.005, 0.01]
    stresses = _stresses(deltas, 117, 66, 30) + rng.normal(0, 0.02, size=(5, 3, 3))
    stresses = 0.5 * (stresses + stresses.transpose(0, 2, 1))
    fit = elastic.fit_cubic_elastic_constants([elastic.elastic_strain(d) for d in deltas], stresses)
    for name, true in (('c11', 117), ('c12', 66), ('c44', 30)):
        assert fit[f'{name}_std'] > 0.1
        assert abs(fit[name] - true) < 5 * fit[f'{name}_std']


def test_cubic_fit_rejects_other_strains():
    tetragonal = [np.diag([d, 0, 0]) for d in (-0.01, 0.01)]
    with pytest.raises(ValueError, match='not of the form'):
        elastic.fit_cubic_elastic_constants(tetragonal, np.zeros((2, 3, 3)))


def test_born_stability():
    assert born_stability_violations(117, 66, 30) == []
    assert any('C11 - C12' in v for v in born_stability_violations(60, 66, 30))
    assert any('C44' in v for v in born_stability_violations(117, 66, -1))
    assert any('C11 + 2 C12' in v for v in born_stability_violations(10, -20, 5))
    assert bulk_modulus_from_cij(117, 66) == pytest.approx(83.0)


def test_cij_convergence_measure():
    """Each constant against the larger of the absolute and the relative tolerance (2 GPa or 2 %)."""
    assert elastic.cij_changes((117, 66, 30), (118.5, 65, 33)) == pytest.approx({'c11': 1.5, 'c12': 1.0, 'c44': 3.0})
    # 2 % of 120 is 2.4 GPa (> 2 GPa); of 30 GPa only 0.6, so C44 gets the 2 GPa floor.
    assert elastic.cij_tolerances((120, 65, 30), 2.0, 0.02) == pytest.approx({'c11': 2.4, 'c12': 2.0, 'c44': 2.0})
    assert elastic.cij_converged((118, 66, 30), (120, 65, 31.9), 2.0, 0.02)  # 2.0 < 2.4, 1 < 2, 1.9 < 2
    assert not elastic.cij_converged((118, 66, 30), (120, 65, 32.1), 2.0, 0.02)  # C44 alone decides
    assert not elastic.cij_converged((117, 63.5, 30), (120, 66, 30), 2.0, 0.02)  # C12 by 2.5 GPa, C' would hide it


def test_std_with_kpoints_error_in_quadrature():
    assert elastic.std_with_kpoints_error(0.3, 0.4) == pytest.approx(0.5)
    assert elastic.std_with_kpoints_error(None, 7.5) == pytest.approx(7.5)
    assert elastic.std_with_kpoints_error(0.5, None) == pytest.approx(0.5)
    assert elastic.std_with_kpoints_error(None, None) is None


def _independent_slope_std(x, y):
    """Slope at zero and its std, written here with numpy alone as the rung's documentation defines them.

    Four or more distinct strains: a cubic polynomial by the normal equations, the standard error of its linear
    coefficient from the residual variance (n - 4 degrees of freedom), in quadrature with the difference to a straight
    line (the truncation estimate).  Fewer: a straight line and its standard error (n - 2 degrees of freedom).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    degree = 3 if len(np.unique(x)) >= 4 else 1
    design = np.stack([x**k for k in range(degree + 1)], axis=1)
    normal = design.T @ design
    coeffs = np.linalg.solve(normal, design.T @ y)
    residual = y - design @ coeffs
    dof = len(x) - degree - 1
    variance = (residual @ residual / dof) * np.linalg.inv(normal)[1, 1] if dof > 0 else 0.0
    if degree == 3:
        line = np.linalg.lstsq(np.stack([np.ones_like(x), x], axis=1), y, rcond=None)[0]
        variance += (coeffs[1] - line[1]) ** 2
    return coeffs[1], np.sqrt(variance)


@pytest.mark.parametrize('deltas', [[-0.01, -0.005, 0.0, 0.005, 0.01], [-0.01, 0.0, 0.01, -0.02, 0.02, 0.015, -0.015]])
def test_cij_std_counts_each_independent_datum_once(deltas):
    """C11, C12, C44 and their std against a fit of the independent data written in the test.

    Per strained cell the independent data are sigma_xx (C11), sigma_yz (C44; sigma_zy is the same number) and one
    value for C12, since sigma_yy = sigma_zz by the y-z mirror symmetry: their mean.  Noise that keeps that symmetry
    (as pw.x's symmetrised stress does) is added; a fit of sigma_yy and sigma_zz as separate points would count each
    measurement twice and give a std about sqrt(2) too small, which the last assertion shows.
    """
    rng = np.random.default_rng(7)
    stresses = _stresses(deltas, 117, 66, 30, nonlinear=-800, pressure=0.3)
    for s in stresses:
        noise = rng.normal(0, 0.05, size=3)
        s[0, 0] += noise[0]
        s[1, 1] += noise[1]
        s[2, 2] += noise[1]
        s[1, 2] += noise[2]
        s[2, 1] += noise[2]
    fit = elastic.fit_cubic_elastic_constants([elastic.elastic_strain(d) for d in deltas], stresses)
    for name, component in (('c11', stresses[:, 0, 0]), ('c12', stresses[:, 1, 1]), ('c44', stresses[:, 1, 2])):
        value, std = _independent_slope_std(deltas, component)
        assert fit[name] == pytest.approx(value, rel=1e-10), name
        assert fit[f'{name}_std'] == pytest.approx(std, rel=1e-8), name
        assert fit[f'{name}_std'] > 0
    doubled, doubled_std = _independent_slope_std(
        np.concatenate([deltas, deltas]), np.concatenate([stresses[:, 1, 1], stresses[:, 2, 2]])
    )
    assert doubled == pytest.approx(fit['c12'], rel=1e-10)
    assert doubled_std < 0.8 * fit['c12_std']


def test_eos_std_counts_each_volume_once():
    """The Birch-Murnaghan std against a Gauss-Newton fit written in the test (numerical Jacobian, numpy only).

    One energy per volume: the covariance is s^2 (J^T J)^-1 with s^2 = RSS / (n - 4).  Written out with numpy from the
    Birch-Murnaghan formula itself (Birch, Phys. Rev. 71, 809 (1947)), not ase's or scipy's fitting code.
    """

    def bm(v, e0, b0, bp, v0):
        eta = (v0 / v) ** (2 / 3)
        return e0 + 9 * v0 * b0 / 16 * ((eta - 1) ** 3 * bp + (eta - 1) ** 2 * (6 - 4 * eta))

    rng = np.random.default_rng(3)
    volumes = eos.eos_grid(15.6, 7, 0.06)
    energies = bm(volumes, -57.0, 82.9 / EV_A3_GPA, 4.3, 15.52) + rng.normal(0, 3e-4, size=7)
    fit = eos.fit_birch_murnaghan(volumes, energies)
    p = np.array([fit['e0'], fit['b0'] / EV_A3_GPA, fit['bp'], fit['v0']])
    for _ in range(20):  # Gauss-Newton from the fit's optimum: it must not move, and gives the Jacobian there
        jac = np.stack([(bm(volumes, *(p + h)) - bm(volumes, *(p - h))) / (2 * h[i]) for i, h in
                        enumerate(np.diag(np.abs(p) * 1e-6))], axis=1)  # fmt: skip
        residual = energies - bm(volumes, *p)
        p = p + np.linalg.lstsq(jac, residual, rcond=None)[0]
    residual = energies - bm(volumes, *p)
    covariance = residual @ residual / (len(volumes) - 4) * np.linalg.inv(jac.T @ jac)
    std = np.sqrt(np.diag(covariance))
    # Same minimum (scipy stops at its own tolerance), same covariance.
    assert fit['v0'] == pytest.approx(p[3], rel=1e-5)
    assert fit['b0'] == pytest.approx(p[1] * EV_A3_GPA, rel=1e-3)
    assert fit['v0_std'] == pytest.approx(std[3], rel=1e-2)
    assert fit['b0_std'] == pytest.approx(std[1] * EV_A3_GPA, rel=1e-2)
    assert fit['bp_std'] == pytest.approx(std[2], rel=1e-2)
    assert fit['b0_std'] > 0.05


def test_pw_parameters_completes_a_copy():
    """The family's cutoffs (scaled), conv_thr per cell and moments, the protocol's dict untouched."""
    protocol = {'SYSTEM': {'occupations': 'smearing'}, 'ELECTRONS': {'conv_thr_per_atom': 1e-10}}
    cutoffs = (40.0, 320.0)
    result = parameters.pw_parameters(protocol, ['Al', 'Ni'], 4, cutoffs, 1.25, {'Ni': 0.3})
    assert protocol == {'SYSTEM': {'occupations': 'smearing'}, 'ELECTRONS': {'conv_thr_per_atom': 1e-10}}
    assert (result['SYSTEM']['ecutwfc'], result['SYSTEM']['ecutrho']) == (50.0, 400.0)
    assert result['ELECTRONS'] == {'conv_thr': pytest.approx(4e-10)}
    assert result['SYSTEM']['nspin'] == 2 and result['SYSTEM']['starting_magnetization'] == {'Ni': 0.3}
    assert 'nspin' not in parameters.pw_parameters(protocol, ['Al'], 1, cutoffs)['SYSTEM']


@pytest.mark.parametrize(
    ('values', 'message'),
    [
        (None, None),
        ({'SYSTEM': {'ecutwfc': 30}}, None),
        ({'SYSTEM': {}}, 'SYSTEM.ecutwfc is missing'),
        ({'SYSTEM': {'ecutwfc': 30}, 'CONTROL': {'calculation': 'vc-relax'}}, 'CONTROL.calculation must be "scf"'),
        # what pw.x 6.7 itself refuses, here before submission, each message naming the fix
        ({'SYSTEM': {'ecutwfc': 0}}, 'SYSTEM.ecutwfc must be a number > 0 (Ry), got 0'),
        ({'SYSTEM': {'ecutwfc': -30.0}}, 'SYSTEM.ecutwfc must be a number > 0 (Ry), got -30.0'),
        ({'SYSTEM': {'ecutwfc': '30'}}, "SYSTEM.ecutwfc must be a number > 0 (Ry), got '30'"),
        ({'SYSTEM': {'ecutwfc': float('nan')}}, 'SYSTEM.ecutwfc must be a number > 0 (Ry), got nan'),
        ({'SYSTEM': {'ecutwfc': 30, 'ecutrho': -120}}, 'SYSTEM.ecutrho must be a number > 0 (Ry), got -120'),
        ({'SYSTEM': {'ecutwfc': 30, 'ecutrho': 20}}, 'SYSTEM.ecutrho = 20 Ry must be larger than ecutwfc = 30 Ry'),
        ({'SYSTEM': {'ecutwfc': 30, 'ecutrho': 30}}, 'use 4 x ecutwfc for norm-conserving pseudopotentials'),
        ({'SYSTEM': {'ecutwfc': 30, 'ecutrho': 120, 'smearing': 'mv'}}, None),
        ({'SYSTEM': {'ecutwfc': 30, 'smearing': 'Marzari-Vanderbilt'}}, None),
        ({'SYSTEM': {'ecutwfc': 30, 'smearing': 'mvv'}}, "SYSTEM.smearing 'mvv' is unknown to pw.x; use one of"),
        ({'SYSTEM': {'ecutwfc': 30, 'occupations': 'smearing'}}, 'SYSTEM.degauss must be a number > 0 (Ry)'),
        ({'SYSTEM': {'ecutwfc': 30, 'occupations': 'smearing', 'degauss': -0.02}}, 'got -0.02; e.g. 0.02'),
        ({'SYSTEM': {'ecutwfc': 30, 'occupations': 'fixed'}}, None),
    ],
)
def test_check_pw_parameters(values, message):
    if message is None:
        settings.check_pw_parameters(values)
        return
    with pytest.raises(ValueError, match=re.escape(message)):
        settings.check_pw_parameters(values)


def test_every_protocol_cutoff_passes_the_pw_checks():
    """The cutoffs and smearing of every protocol of dft.yaml are ones the checks (and pw.x) accept."""
    from aiida_multiscale.workflows.protocols.utils import load_protocol_file

    data = load_protocol_file('dft')
    for name, protocol in data['protocols'].items():
        cutoffs = {**data['default_inputs'].get('cutoffs', {}), **protocol.get('cutoffs', {})}
        for element, (ecutwfc, ecutrho) in cutoffs.items():
            system = {'ecutwfc': ecutwfc, 'ecutrho': ecutrho, 'occupations': 'smearing', 'smearing': 'mv'}
            settings.check_pw_parameters({'SYSTEM': {**system, 'degauss': 0.02}})
            assert ecutrho >= 4 * ecutwfc, (name, element)  # the density of norm-conserving pseudos: 4x

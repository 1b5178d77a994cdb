"""Verification of the DFT equation of state against the all-electron reference of Bosoni et al. 2024.

The metrics nu and epsilon are checked against a second implementation written here from the paper's formulas
(Bosoni et al., Nat. Rev. Phys. 6, 45 (2024)): its own Birch-Murnaghan E(V), Simpson integration instead of Gauss-
Legendre, and, for the real pw.x run, its own fit of the E(V) points (linear least squares of a cubic in V^(-2/3),
which is the Birch-Murnaghan form, instead of ase's non-linear fit).  Known limits: identical curves give 0, a pure V0
shift gives nu in closed form and, for a narrow window where E(V) is harmonic, epsilon in closed form.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiida import orm
from scipy.integrate import simpson

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.physics import verification

#: 1 eV/angstrom^3 in GPa (CODATA e = 1.602176634e-19 C), written here rather than taken from the package.
GPA_PER_EV_A3 = 160.21766208

#: Cu, all-electron PBE average (WIEN2k, FLEUR) of Bosoni et al. 2024, fcc: V0 [A^3], B0 [GPa], B1 (the paper's data,
#: acwf-verification-scripts results-unaries-verification-PBE-v1-AE-average.json: min_volume 11.952225 A^3,
#: bulk_modulus_ev_ang3 0.8800041 = 140.9922 GPa, bulk_deriv 5.05569), and a0 = (4 V0)^(1/3) [A].
CU_REFERENCE = (11.952225, 140.9922, 5.05569)
CU_A0 = 3.629


# -- the test's own implementation of the paper's formulas ------------------------------------------------------------
def bm_energy(volume, v0, b0_gpa, b1):
    """Birch-Murnaghan E(V) - E(V0) [eV] (Birch 1947), written out: 9 V0 B0/16 {(x-1)^3 B1 + (x-1)^2 (6 - 4x)}."""
    x = (v0 / np.asarray(volume, dtype=float)) ** (2.0 / 3.0)
    b0 = b0_gpa / GPA_PER_EV_A3
    return 9.0 * v0 * b0 / 16.0 * ((x - 1.0) ** 3 * b1 + (x - 1.0) ** 2 * (6.0 - 4.0 * x))


def nu_by_formula(a, b, weights=(1.0, 1.0 / 20.0, 1.0 / 400.0)):
    """nu = 100 sqrt(sum_Y [w_Y (Y_a - Y_b) / ((Y_a + Y_b)/2)]^2), Y = V0, B0, B1."""
    return 100.0 * np.sqrt(sum((w * (ya - yb) / ((ya + yb) / 2.0)) ** 2 for w, ya, yb in zip(weights, a, b)))


def epsilon_by_formula(a, b, half_width=0.06, points=20001):
    """epsilon = sqrt(<(E_a - E_b)^2> / sqrt(<(E_a - <E_a>)^2> <(E_b - <E_b>)^2>)) on (1 -/+ w)(V0a + V0b)/2."""
    centre = (a[0] + b[0]) / 2.0
    volumes = np.linspace((1 - half_width) * centre, (1 + half_width) * centre, points)
    width = volumes[-1] - volumes[0]

    def mean(values):
        return simpson(values, x=volumes) / width

    energy_a, energy_b = bm_energy(volumes, *a), bm_energy(volumes, *b)
    numerator = mean((energy_a - energy_b) ** 2)
    return np.sqrt(numerator / np.sqrt(mean((energy_a - mean(energy_a)) ** 2) * mean((energy_b - mean(energy_b)) ** 2)))


def bm_fit_by_polynomial(volumes, energies):
    """V0, B0 [GPa], B1 of a least-squares Birch-Murnaghan fit, done as a cubic in u = V^(-2/3) (E is linear in its
    four coefficients, so the fit is a linear least-squares problem with a unique solution)."""
    volumes, energies = np.asarray(volumes, dtype=float), np.asarray(energies, dtype=float)
    poly = np.polynomial.Polynomial.fit(volumes ** (-2.0 / 3.0), energies, 3).convert()
    d1, d2, d3 = poly.deriv(1), poly.deriv(2), poly.deriv(3)
    roots = [r.real for r in d1.roots() if abs(r.imag) < 1e-12 and d2(r.real) > 0]
    u0 = min(roots, key=lambda r: abs(r ** (-1.5) - volumes.mean()))
    v0 = u0 ** (-1.5)
    # Chain rule with u(V) = V^(-2/3): u' = -2/3 V^(-5/3), u'' = 10/9 V^(-8/3), u''' = -80/27 V^(-11/3); p'(u0) = 0.
    du, ddu = -2.0 / 3.0 * v0 ** (-5.0 / 3.0), 10.0 / 9.0 * v0 ** (-8.0 / 3.0)
    e_vv = d2(u0) * du**2
    e_vvv = d3(u0) * du**3 + 3.0 * d2(u0) * du * ddu
    b0 = v0 * e_vv
    b1 = -1.0 - v0 * e_vvv / e_vv  # B' = dB/dP with B = V E'', P = -E'
    return v0, b0 * GPA_PER_EV_A3, b1


def _bm(values) -> verification.BirchMurnaghan:
    return verification.BirchMurnaghan(*values)


# -- the metrics ------------------------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize(
    'other',
    [
        (11.952225 * 1.01, 141.0 * 0.97, 5.06 * 1.02),
        (12.5, 120.0, 4.5),
        (11.8, 150.0, 5.5),
        (16.495, 77.5, 4.62),  # Al against Cu: far apart, epsilon > 1
    ],
)
def test_nu_and_epsilon_against_the_formulas(other):
    """The module's nu and epsilon equal the test's own implementation of the paper's formulas."""
    assert verification.nu(_bm(other), _bm(CU_REFERENCE)) == pytest.approx(
        nu_by_formula(other, CU_REFERENCE), rel=1e-12
    )
    assert verification.epsilon(_bm(other), _bm(CU_REFERENCE)) == pytest.approx(
        epsilon_by_formula(other, CU_REFERENCE), rel=1e-7
    )
    # Both are symmetric in the two curves.
    assert verification.epsilon(_bm(CU_REFERENCE), _bm(other)) == pytest.approx(
        verification.epsilon(_bm(other), _bm(CU_REFERENCE)), rel=1e-12
    )


@pytest.mark.unit
def test_identical_curves_give_zero():
    assert verification.nu(_bm(CU_REFERENCE), _bm(CU_REFERENCE)) == 0.0
    assert verification.epsilon(_bm(CU_REFERENCE), _bm(CU_REFERENCE)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.unit
@pytest.mark.parametrize('shift', [1e-4, 1e-3, -2e-3])
def test_pure_v0_shift_closed_forms(shift):
    """Only V0 differs: nu = 100 |2 dV / (V_a + V_b)|.  In a narrow window (half-width w, harmonic E = k (V - V0)^2)
    E_a - E_b = 2 k dV x about the window's centre, so epsilon = sqrt(15) |dV| / sqrt(L^2 + 15/4 dV^2), L = w V_M."""
    v0, b0, b1 = CU_REFERENCE
    shifted = (v0 * (1 + shift), b0, b1)
    delta = shifted[0] - v0
    assert verification.nu(_bm(shifted), _bm(CU_REFERENCE)) == pytest.approx(
        100 * abs(2 * delta / (shifted[0] + v0)), rel=1e-12
    )
    half_width = 0.004
    length = half_width * (v0 + shifted[0]) / 2
    closed = np.sqrt(15) * abs(delta) / np.sqrt(length**2 + 15 / 4 * delta**2)
    # Anharmonic (B1) terms are of relative order w (B1 + 1): 3 % at w = 0.4 %.
    assert verification.epsilon(_bm(shifted), _bm(CU_REFERENCE), half_width) == pytest.approx(closed, rel=0.03)


@pytest.mark.unit
def test_nu_weights_and_signs():
    """The weights multiply the relative differences inside the square: a 20 % B0 difference weighs as 1 % in V0."""
    v0, b0, b1 = CU_REFERENCE
    b0_only = (v0, b0 * 1.2, b1)
    expected = 100 * (1 / 20) * abs(2 * (b0_only[1] - b0) / (b0_only[1] + b0))
    assert verification.nu(_bm(b0_only), _bm(CU_REFERENCE)) == pytest.approx(expected, rel=1e-12)
    assert verification.relative_difference(2.0, 1.0) == pytest.approx(2 / 3)
    assert verification.relative_difference(1.0, 2.0) == pytest.approx(-2 / 3)


@pytest.mark.unit
def test_agreement_thresholds_of_the_paper():
    """Excellent nu < 0.10, epsilon < 0.06; good nu < 0.33, epsilon < 0.20; outliers nu > 1.65, epsilon > 1.0."""
    assert [verification.agreement('nu', x) for x in (0.05, 0.2, 1.0, 2.0)] == ['excellent', 'good', 'fair', 'outlier']
    assert [verification.agreement('epsilon', x) for x in (0.05, 0.1, 0.5, 1.5)] == [
        'excellent',
        'good',
        'fair',
        'outlier',
    ]


@pytest.mark.unit
def test_reference_table_shipped_with_its_source_and_licence():
    """96 fcc elements, in the units of the paper's data (GPa after conversion), with the source and the MIT notice."""
    table = verification.load_reference()
    assert len(table['elements']) == 96
    assert 'Bosoni' in table['source'] and 'Nat. Rev. Phys. 6, 45' in table['source']
    assert 'acwf-verification-scripts' in table['source']
    notice = '\n'.join(table['licence']['notice'])
    assert 'MIT License' in notice and 'Copyright (c) 2021 AiiDA team' in notice and 'shall be included' in notice
    cu = verification.reference_eos('Cu')
    assert (cu.v0, cu.b0, cu.b1) == pytest.approx(CU_REFERENCE, rel=1e-5)
    assert cu.a0_fcc == pytest.approx(CU_A0, abs=5e-4)
    al = verification.reference_eos('Al')  # 16.495 A^3, 77.5 GPa, a0 4.041 A in the same dataset
    assert (al.v0, al.b0, al.a0_fcc) == pytest.approx((16.495, 77.51, 4.041), rel=2e-4)
    assert verification.reference_eos('Xx') is None


@pytest.mark.unit
@pytest.mark.parametrize(
    ('args', 'words'),
    [
        (('Cu', 'pbe', 1, 4.0), None),
        (('Cu', 'lda', 1, 4.0), ['LDA', 'PBE']),
        (('Cu', None, 1, 4.0), ['not recorded']),
        (('Ni', 'pbe', 2, 4.0), ['spin-polarised']),
        (('Fe', 'pbe', 1, 2.0), ['bcc', 'fcc']),
        (('Po', 'pbe', 1, 1.0), ['sc', 'fcc']),
        (('Og', 'pbe', 1, 4.0), ['no all-electron reference for Og']),
    ],
)
def test_why_not_comparable(args, words):
    reason = verification.why_not_comparable(*args)
    if words is None:
        assert reason is None
    else:
        assert reason is not None and all(word in reason for word in words), reason


# -- the calcfunction on hand-made EOS handoffs -------------------------------------------------------------------
def _fake_eos(v0, b0, b1, functional='pbe', nspin=1, atoms_per_cube=4.0) -> HandoffData:
    volumes = list(np.linspace(0.94, 1.06, 7) * v0)
    energies = list(bm_energy(volumes, v0, b0, b1) - 3.0)
    a0 = (atoms_per_cube * v0) ** (1 / 3)
    return HandoffData(
        {
            'a0': {'value': a0, 'unit': 'angstrom', 'std': 1e-4},
            'v0': {'value': v0, 'unit': 'angstrom**3', 'std': 0.002},
            'bulk_modulus': {'value': b0, 'unit': 'GPa', 'std': 0.5},
            'bulk_modulus_derivative': {'value': b1, 'unit': 'dimensionless', 'std': 0.05},
        },
        producer='fit_equation_of_state',
        from_scale='dft',
        to_scale='md',
        metadata={'functional': functional, 'nspin': nspin, 'eos_volumes': volumes, 'eos_energies': energies},
    )


def test_verify_equation_of_state_compared_fake(aiida_profile):
    """A PBE fcc Cu EOS: the five quantities, each equal to the test's formulas; the source in notes and metadata."""
    from aiida_multiscale.workflows.functions.verification import verify_equation_of_state

    ours = (12.10, 135.0, 5.2)
    node = verify_equation_of_state(_fake_eos(*ours), orm.Str('Cu'))
    assert node.metadata['status'] == 'compared'
    assert node.value('nu') == pytest.approx(nu_by_formula(ours, CU_REFERENCE), rel=1e-5)
    assert node.value('epsilon') == pytest.approx(epsilon_by_formula(ours, CU_REFERENCE), rel=1e-5)
    for index, name in enumerate(('v0', 'b0', 'b1')):
        expected = 2 * (ours[index] - CU_REFERENCE[index]) / (ours[index] + CU_REFERENCE[index])
        assert node.value(f'{name}_relative_difference') == pytest.approx(expected, rel=1e-5)
    # std of (a - r)/((a + r)/2) to first order: 4 r / (a + r)^2 * std_a
    assert node['v0_relative_difference'].std == pytest.approx(
        4 * CU_REFERENCE[0] / (ours[0] + CU_REFERENCE[0]) ** 2 * 0.002
    )
    assert all(node[name].unit == 'dimensionless' for name in node.names)
    assert 'Bosoni et al., Nat. Rev. Phys. 6, 45 (2024)' in node['nu'].note
    assert 'Bosoni' in node.metadata['reference_source'] and 'MIT' in node.metadata['reference_licence']
    assert node.metadata['reference']['v0'] == pytest.approx(CU_REFERENCE[0], rel=1e-6)
    assert (node.from_scale, node.to_scale, node.producer) == ('dft', 'dft', 'verify_equation_of_state')


@pytest.mark.parametrize(
    ('element', 'kwargs', 'words'),
    [
        ('Cu', {'functional': 'lda'}, ['LDA', 'PBE']),
        ('Ni', {'nspin': 2}, ['spin-polarised']),
        ('Fe', {'atoms_per_cube': 2.0}, ['bcc']),
    ],
)
def test_verify_equation_of_state_without_reference_fake(aiida_profile, element, kwargs, words):
    """Not on the reference's footing: no quantities, status no_reference and the reason."""
    from aiida_multiscale.workflows.functions.verification import verify_equation_of_state

    node = verify_equation_of_state(_fake_eos(11.0, 180.0, 5.0, **kwargs), orm.Str(element))
    assert node.names == []
    assert node.metadata['status'] == 'no_reference'
    assert all(word in node.metadata['reason'] for word in words), node.metadata['reason']


# -- real pw.x: Cu with PBE --------------------------------------------------------------------------------------------
def _cu_overrides() -> dict:
    """Small Cu PBE settings: 5 volumes, 2 strains, 8^3 k everywhere, no k-convergence loop, lower cutoffs."""
    from aiida_multiscale.workflows.dft import default_parameters

    parameters = {
        'eos_points': 5,
        'eos_volume_range': 0.05,
        'strains': [-0.01, 0.01],
        'kpoints_mesh': [8, 8, 8],
        'kpoints_distance': None,
        'elastic_kpoints_distance': None,
        'kpoints_convergence': False,
        # The B(Cij) = B0 check is not what this test is about, and 8^3 k is coarse for the strained cells.
        'bulk_modulus_tolerance': 0.5,
    }
    if 'kpoints_error_estimate' in default_parameters():
        parameters['kpoints_error_estimate'] = False
    # Cu.pbe-kjpaw (PAW, A. Dal Corso's atomic code, 2008) suggests at least 47 Ry.  Measured here with 8^3 k and MV
    # 0.02 Ry: a0 = 3.674 A at 35/280 Ry (the Pulay stress of the unconverged basis favours larger volumes) and 3.665 A
    # at 50/400 Ry, exactly 1.0 % above the all-electron 3.629 A; 3.664 A (0.97 %) at 60/480 Ry: the file itself is
    # about 1 % long, so this test sits at the edge of the issue's 1 % (nu 2.9, epsilon 1.4: an outlier).
    system = {'ecutwfc': 60.0, 'ecutrho': 480.0}
    return {'parameters': parameters, 'scf': {'pw': {'parameters': {'SYSTEM': system}}}}


@pytest.mark.daemon
@pytest.mark.real_code
@pytest.mark.slow
def test_verification_cu_pbe_real(codes, multiscale_setup, submit_and_await):
    """Cu with PBE (Cu.pbe-kjpaw of the multiscale/pbe family): a0 within 1 % of the all-electron 3.629 A, and the
    verification output's nu and epsilon equal the test's own fit and formulas on the same E(V) points."""
    from aiida_multiscale.workflows.dft import DftWorkChain

    start = time.monotonic()
    builder = DftWorkChain.get_builder_from_protocol(
        codes['pw'], element='Cu', protocol='fast', overrides=_cu_overrides(), pseudo_family='multiscale/pbe'
    )
    node = submit_and_await(builder, timeout=1800)
    print(f'Cu PBE DftWorkChain: {time.monotonic() - start:.1f} s wall')
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    eos = node.outputs.eos
    assert eos.metadata['functional'] == 'pbe'
    assert eos.value('a0', 'angstrom') == pytest.approx(CU_A0, rel=0.01)

    result = node.outputs.verification
    print({name: result.value(name) for name in result.names}, result.metadata['agreement'])
    assert result.metadata['status'] == 'compared'
    ours = bm_fit_by_polynomial(eos.metadata['eos_volumes'], eos.metadata['eos_energies'])
    # The same least squares solved two ways: the rung's iterative fit (ase, then scipy's curve_fit, which stops at its
    # default tolerance) and the test's exact linear one agree to ~1e-5 in V0 and ~1e-3 in B0 and B1 (measured here:
    # 7e-6 and 5e-4 for Cu at 35/280 Ry), far inside the fit std; nu and epsilon inherit that.
    assert ours[0] == pytest.approx(eos.value('v0'), rel=1e-4)
    assert ours[0] == pytest.approx(eos.value('v0'), abs=eos['v0'].std)
    assert result.value('nu') == pytest.approx(nu_by_formula(ours, CU_REFERENCE), rel=3e-3)
    assert result.value('epsilon') == pytest.approx(epsilon_by_formula(ours, CU_REFERENCE), rel=3e-3)
    assert result.value('v0_relative_difference') == pytest.approx(
        2 * (ours[0] - CU_REFERENCE[0]) / (ours[0] + CU_REFERENCE[0]), rel=3e-3
    )

"""Crystal plasticity on the periodic RVE (MOOSE, Kalidindi flow rule): single crystals against analytic references.

The references are written here or come from separately written code, not from the builder:

* the crystal direction of the loading axis from scipy's ``Rotation`` (not the package's Bunge matrices);
* the Schmid factors from :mod:`aiida_multiscale.physics.plasticity` (its own slip-system table);
* the directional Young's modulus of a cubic crystal from its compliance,
  ``1/E_d = S11 - 2 (S11 - S12 - S44/2) (l1^2 l2^2 + l2^2 l3^2 + l3^2 l1^2)`` (Nye, Physical Properties of
  Crystals, 1957, ch. VIII);
* the rate-dependent single-crystal yield ``(tau_c / m) (eps_dot / (N m a0))^xm`` of the Kalidindi, Bronkhorst and
  Anand (J. Mech. Phys. Solids 40, 537 (1992)) power law, for the ``N`` systems of highest Schmid factor ``m``.
"""

from __future__ import annotations

import os
import pathlib
import resource
import shutil
import subprocess

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from aiida_multiscale.engines.moose import plasticity as cp
from aiida_multiscale.parsers.moose import parse_csv
from aiida_multiscale.physics.plasticity import FCC_SLIP_SYSTEMS, sachs_taylor_yield, schmid_factors

#: Al, MPa: Kamm and Alers, J. Appl. Phys. 35, 327 (1964), room temperature (108.2, 61.3, 28.5 GPa).
AL = (108200.0, 61300.0, 28500.0)
TAU_C = 10.0  # MPa
HARDENING = {'h': 10.0, 't_sat': 20.0}  # MPa; weak, so that g stays ~tau_c up to the 0.2 % offset yield
STRAIN_RATE = 1e-3  # 1/s
A0 = 1e-3  # 1/s
#: Rate exponent: small, so the rate factor is close to 1 (0.97-0.99 here) and the transition sharp.
XM = 0.02
#: Bunge angles (degrees) that put a crystal direction on the sample x axis (the loading axis).
ORIENTATIONS = {'001': (0.0, 0.0, 0.0), '111': (90.0, 54.7356103 + 90.0, 45.0)}


# ------------------------------------------------------------------------------------------- independent references
def _loading_direction(euler_deg) -> np.ndarray:
    """Sample x in crystal axes: Bunge (phi1, Phi, phi2) is the intrinsic z-x'-z'' crystal -> sample rotation R."""
    return Rotation.from_euler('ZXZ', euler_deg, degrees=True).as_matrix().T @ np.array([1.0, 0.0, 0.0])


def _directional_modulus(c11, c12, c44, direction) -> float:
    """Young's modulus of a cubic crystal along ``direction`` (crystal axes), from the compliances."""
    s11 = (c11 + c12) / ((c11 - c12) * (c11 + 2 * c12))
    s12 = -c12 / ((c11 - c12) * (c11 + 2 * c12))
    s44 = 1 / c44
    l1, l2, l3 = np.asarray(direction) / np.linalg.norm(direction)
    return 1 / (s11 - 2 * (s11 - s12 - s44 / 2) * (l1**2 * l2**2 + l2**2 * l3**2 + l3**2 * l1**2))


def _highest_schmid(direction) -> tuple[float, int]:
    factors = schmid_factors(direction)
    m = factors.max()
    return float(m), int(np.sum(np.isclose(factors, m, rtol=1e-9)))


def test_reference_orientations():
    """The test's Euler angles put crystal [001] and [111] on the loading axis x (by scipy, not the package)."""
    np.testing.assert_allclose(_loading_direction(ORIENTATIONS['001']), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(_loading_direction(ORIENTATIONS['111']), np.ones(3) / np.sqrt(3), atol=1e-9)
    # Textbook values: m = 1/sqrt(6) on 8 systems along <001>, 2/(3 sqrt(6)) on 6 systems along <111>.
    assert _highest_schmid([0, 0, 1]) == (pytest.approx(1 / np.sqrt(6)), 8)
    assert _highest_schmid([1, 1, 1]) == (pytest.approx(2 / (3 * np.sqrt(6))), 6)


# ------------------------------------------------------------------------------------------------------ unit tests
def test_fcc_slip_systems_geometry():
    """12 systems, each a {111} plane and a <110> direction in it, all distinct, the same set as physics' table."""
    rows = np.array([[float(v) for v in line.split()] for line in cp.fcc_slip_systems().splitlines()])
    assert rows.shape == (12, 6)
    normals, directions = rows[:, :3], rows[:, 3:]
    np.testing.assert_array_equal(np.einsum('ij,ij->i', normals, directions), 0.0)
    np.testing.assert_array_equal(np.sort(np.abs(normals), axis=1), np.ones((12, 3)))
    np.testing.assert_array_equal(np.sort(np.abs(directions), axis=1), np.tile([0.0, 1.0, 1.0], (12, 1)))

    def canonical(n, b):
        # A system and its reverse (-n or -b) are the same: fix the signs by the first non-zero entries.
        n = n / np.linalg.norm(n) * np.sign(n[np.flatnonzero(n)[0]])
        b = b / np.linalg.norm(b) * np.sign(b[np.flatnonzero(b)[0]])
        return tuple(np.round(np.concatenate([n, b]), 9))

    ours = {canonical(n, b) for n, b in zip(normals, directions)}
    assert len(ours) == 12
    theirs = {canonical(np.asarray(n, float), np.asarray(b, float)) for n, b in zip(*FCC_SLIP_SYSTEMS)}
    assert ours == theirs


def test_flow_curve_analysis_bilinear():
    """An analytic bilinear curve: E, the 0.2 % offset yield and the flow stress are known in closed form."""
    youngs, yield_stress, tangent = 70000.0, 100.0, 1000.0  # MPa
    strain = np.linspace(0.0, 0.03, 301)
    knee = yield_stress / youngs
    stress = np.where(strain <= knee, youngs * strain, yield_stress + tangent * (strain - knee))
    result = cp.flow_curve_analysis(strain, stress)
    # Offset line E (e - 0.002) meets the hardening branch at e - knee = 0.002 E / (E - H).
    expected = yield_stress + tangent * 0.002 * youngs / (youngs - tangent)
    assert result['youngs_modulus'] == pytest.approx(youngs, rel=1e-12)
    assert result['yield_strength'] == pytest.approx(expected, rel=1e-3)
    assert result['flow_stress'] == pytest.approx(yield_stress + tangent * (0.02 - knee), rel=1e-3)
    # A wrong modulus moves the offset line, and the yield with it: the function uses the one it is given.
    softer = cp.flow_curve_analysis(strain, stress, youngs_modulus=0.5 * youngs)
    assert softer['yield_strength'] > expected + 1.0
    # A curve cut before the crossing is refused, and one cut before the flow strain has no flow stress.
    with pytest.raises(ValueError, match='load further'):
        cp.flow_curve_analysis(strain[:3], stress[:3])
    assert cp.flow_curve_analysis(strain[:50], stress[:50])['flow_stress'] is None
    # A curve ending at the flow strain up to round-off (MOOSE's last F11 - 1 is 0.0199999999997) still has it.
    ends = cp.flow_curve_analysis(strain[:201] * (1 - 1e-11), stress[:201])
    assert ends['flow_stress'] == pytest.approx(yield_stress + tangent * (0.02 - knee), rel=1e-3)


def test_rate_sensitivity_factor():
    """1 when the applied rate is what the active systems give at tau = g; the power law's xm otherwise."""
    m = 1 / np.sqrt(6)
    assert cp.rate_sensitivity_factor(8 * m * 1e-3, 1e-3, 0.1, m, 8) == pytest.approx(1.0, rel=1e-14)
    assert cp.rate_sensitivity_factor(80 * m * 1e-3, 1e-3, 0.1, m, 8) == pytest.approx(10**0.1, rel=1e-14)


def test_builder_refusals_name_the_fix():
    grains = np.array([[0, 1], [1, 0]])
    euler = [[0, 0, 0], [45, 30, 0]]
    good = {'hardening': HARDENING}
    with pytest.raises(ValueError, match='tau_c must be positive.*give the slip resistance'):
        cp.build_cp_rve_input(grains, euler, *AL, [10.0, -1.0], **good)
    with pytest.raises(ValueError, match='1 values of tau_c for 2 grains.*one initial slip resistance per grain'):
        cp.build_cp_rve_input(grains, euler, *AL, [10.0], **good)
    with pytest.raises(ValueError, match='one .* row and one tau_c per grain id'):
        cp.build_cp_rve_input(grains + 1, euler, *AL, [10.0, 12.0], **good)
    with pytest.raises(ValueError, match='raise hardening\\["t_sat"\\] above every tau_c'):
        cp.build_cp_rve_input(grains, euler, *AL, [10.0, 25.0], **good)
    with pytest.raises(ValueError, match=r"needs \['t_sat'\]"):
        cp.build_cp_rve_input(grains, euler, *AL, [10.0, 12.0], hardening={'h': 10.0})
    with pytest.raises(ValueError, match='Born-stable'):
        cp.build_cp_rve_input(grains, euler, 100.0, 120.0, 50.0, [10.0, 12.0], **good)


def test_builder_one_block_per_slip_resistance():
    """Grains sharing tau_c share a block; every element gets its grain's block and its grain's Euler angles."""
    grains = np.array([[0, 1], [2, 0]])
    euler = [[10.0, 20.0, 30.0], [40.0, 50.0, 60.0], [70.0, 80.0, 90.0]]
    model = cp.build_cp_rve_input(grains, euler, *AL, [12.0, 15.0, 12.0], hardening=HARDENING, layers=2)
    assert model.block_tau_c == {0: 12.0, 1: 15.0}
    text = model.input_text
    # Elements x fastest, then y, then z: two layers of the map [[0, 1], [2, 0]] -> blocks [[0, 1], [0, 0]].
    assert "subdomain_ids = '0 1 0 0 0 1 0 0'" in text
    assert text.count('type = CrystalPlasticityKalidindiUpdate') == 2
    assert 'gss_initial = 15.0' in text and 'gss_initial = 12.0' in text
    rows = np.loadtxt(model.files[cp.EULER_FILE].decode().splitlines(), delimiter=',')
    np.testing.assert_allclose(rows, np.tile(np.array(euler)[[0, 1, 2, 0]], (2, 1)))
    for needed in ('rotate_old_stress = true', 'solve_type = PJFNK', 'line_search = none', 'order = NINTH'):
        assert needed in text
    # Uniform tau_c: one block, no subdomain generator, however many grains.
    uniform = cp.build_cp_rve_input(grains, euler, *AL, [12.0] * 3, hardening=HARDENING)
    assert uniform.block_tau_c == {0: 12.0} and 'ElementSubdomainIDGenerator' not in uniform.input_text
    # A resolution groups nearby values: 12.04 and 11.97 both round to 12.0 (0.1 MPa grid), 15.0 stays.
    grouped = cp.build_cp_rve_input(grains, euler, *AL, [12.04, 15.0, 11.97], hardening=HARDENING, tau_c_resolution=0.1)
    assert grouped.block_tau_c == {0: pytest.approx(12.0), 1: pytest.approx(15.0)}


# ------------------------------------------------------------------------------------------------ real MOOSE runs
def _moose() -> str:
    executable = os.environ.get('AIIDA_MULTISCALE_MOOSE') or shutil.which('moose')
    if not executable:
        pytest.skip('no MOOSE executable: set AIIDA_MULTISCALE_MOOSE')
    return executable


def _run(model: cp.CpRveModel, folder: pathlib.Path) -> dict:
    """Run MOOSE on the model in ``folder``; the CSV columns, and the CPU seconds the run took (user + system)."""
    folder.mkdir(parents=True)
    (folder / 'input.i').write_text(model.input_text)
    for name, content in model.files.items():
        (folder / name).write_bytes(content)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(
        [_moose(), '-i', 'input.i', '--n-threads=1', '--no-color'],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    series = parse_csv((folder / f'{cp.FILE_BASE}.csv').read_text())
    series['cpu_seconds'] = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return series


@pytest.fixture(scope='module')
def single_crystals(tmp_path_factory):
    """Uniaxial tension of an Al single crystal along [001] and along [111] to 0.6 % in 60 steps (one element)."""
    runs = {}
    for label, euler in ORIENTATIONS.items():
        model = cp.build_single_crystal_input(
            euler,
            *AL,
            TAU_C,
            hardening=HARDENING,
            strain=0.006,
            strain_rate=STRAIN_RATE,
            steps=60,
            a0=A0,
            xm=XM,
        )
        runs[label] = _run(model, tmp_path_factory.mktemp('cp') / label)
    return runs


@pytest.mark.real_code
@pytest.mark.parametrize('label', list(ORIENTATIONS))
def test_single_crystal_yield_real(single_crystals, label):
    """0.2 % offset yield = (tau_c / m) (eps_dot / (N m a0))^xm, within 2 %: Schmid's law with the flow rule's rate.

    [001] and [111] differ by the Schmid factor (1/sqrt(6) vs 2/(3 sqrt(6)): 1.5x in yield) and the number of active
    systems, so a wrong orientation convention or a slip system missing from the file fails here.
    """
    series = single_crystals[label]
    strain, stress = cp.flow_curve(series)
    result = cp.flow_curve_analysis(strain, stress, flow_strain=0.005)
    m, n_active = _highest_schmid(_loading_direction(ORIENTATIONS[label]))
    expected = TAU_C / m * cp.rate_sensitivity_factor(STRAIN_RATE, A0, XM, m, n_active)
    assert result['yield_strength'] == pytest.approx(expected, rel=0.02)
    # Steady flow: little hardening between the yield and 0.5 % (h = 10 MPa, t_sat = 2 tau_c).
    assert result['flow_stress'] == pytest.approx(result['yield_strength'], rel=0.01)
    # Uniaxial stress: the homogenisation constraint holds the other PK1 components at zero (MPa).
    for name in ('pk1_yy', 'pk1_zz', 'pk1_xy', 'pk1_xz', 'pk1_yz'):
        assert np.abs(series[name]).max() < 1e-6 * result['yield_strength'], name
    # Plastic incompressibility: at the end the lateral stretches nearly compensate the axial one.
    volume = series['F_xx'][-1] * series['F_yy'][-1] * series['F_zz'][-1]
    assert volume - 1 < 0.1 * (series['F_xx'][-1] - 1)
    cpu = series['cpu_seconds']
    print(f'[{label}] yield {result["yield_strength"]:.3f} MPa, expected {expected:.3f}; {cpu:.2f} s CPU')


@pytest.mark.real_code
@pytest.mark.parametrize('label', list(ORIENTATIONS))
def test_single_crystal_modulus_real(single_crystals, label):
    """E from the first (elastic) step = the cubic crystal's directional modulus 1/S'_xx within 0.5 %.

    Al is mildly anisotropic (E<111>/E<100> = 1.19), so a rotation applied the wrong way round fails here.
    """
    strain, stress = cp.flow_curve(single_crystals[label])
    result = cp.flow_curve_analysis(strain, stress)
    expected = _directional_modulus(*AL, _loading_direction(ORIENTATIONS[label]))
    assert result['youngs_modulus'] == pytest.approx(expected, rel=0.005)


@pytest.mark.real_code
def test_two_slip_resistances_between_bounds_real(tmp_path):
    """Two grains of one orientation ([001] on x), tau_c 10 and 14 MPa on 3/4 and 1/4 of the map: two blocks.

    The yield lies between the weakest grain's single-crystal yield (10 MPa / m, the static lower bound, times the
    flow rule's rate factor) and the Taylor upper bound of the area-weighted grains (rate-independent, from the
    linear programme of ``physics.plasticity``, separate code).  Both ends are failures of the per-grain wiring:
    every block at 10 MPa gives the lower end, the two values swapped between the grains (13 MPa on average) or
    every block at 14 MPa lies above the upper end.  One orientation, one set of elastic constants: the elastic
    response is homogeneous, so E is still exactly E<100>.
    """
    grains = np.array([[0, 0], [0, 1]])
    tau_c = [TAU_C, 1.4 * TAU_C]
    euler = [ORIENTATIONS['001']] * 2
    model = cp.build_cp_rve_input(
        grains, euler, *AL, tau_c, hardening=HARDENING, strain=0.006, strain_rate=STRAIN_RATE, steps=60, a0=A0, xm=XM
    )
    assert len(model.block_tau_c) == 2
    series = _run(model, tmp_path / 'two_grains')
    result = cp.flow_curve_analysis(*cp.flow_curve(series))
    bounds = sachs_taylor_yield(np.array(euler), np.array(tau_c) * 1e6, weights=[0.75, 0.25])  # Pa
    m, n_active = _highest_schmid([1.0, 0.0, 0.0])
    lower = bounds['yield_strength_static'] / 1e6 * cp.rate_sensitivity_factor(STRAIN_RATE, A0, XM, m, n_active)
    upper = bounds['yield_strength_taylor'] / 1e6
    assert 1.02 * lower < result['yield_strength'] <= upper, (lower, result['yield_strength'], upper)
    assert result['youngs_modulus'] == pytest.approx(_directional_modulus(*AL, [1, 0, 0]), rel=0.005)
    print(f'two grains: yield {result["yield_strength"]:.3f} MPa in ({lower:.3f}, {upper:.3f})')

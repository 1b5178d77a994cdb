"""Tests of the pure elasticity helpers against closed forms: rotation, directional modulus, Voigt/Reuss/Hill."""

from __future__ import annotations

import numpy as np
import pytest
from references import crystal_direction_of_sample_x, directional_youngs, youngs_bounds
from scipy.spatial.transform import Rotation

from aiida_multiscale.physics import elasticity as m

pytestmark = pytest.mark.unit
AL = (108.2, 61.3, 28.5)  # GPa, an LDA set of Al from pw.x (Al.pz-vbc.UPF)


def test_e100_and_directional_modulus_agree_with_closed_forms():
    """E<100> = (C11 - C12)(C11 + 2 C12)/(C11 + C12) and E<111> = 3 C44 (C11 + 2 C12)/(C11 + 2 C12 + C44) (Nye)."""
    c11, c12, c44 = AL
    e_100 = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)
    e_111 = 3 * c44 * (c11 + 2 * c12) / (c11 + 2 * c12 + c44)
    assert m.e100(*AL) == pytest.approx(e_100, rel=1e-14)
    assert 1 / np.linalg.inv(m.cubic_stiffness(*AL))[0, 0] == pytest.approx(e_100, rel=1e-12)
    assert m.directional_modulus(*AL, [1, 0, 0]) == pytest.approx(e_100, rel=1e-12)
    assert m.directional_modulus(*AL, [1, 1, 1]) == pytest.approx(e_111, rel=1e-12)
    assert m.directional_modulus(*AL, [2, -1, 3]) == pytest.approx(directional_youngs(*AL, [2, -1, 3]), rel=1e-12)
    assert e_111 > e_100  # Al: A = 2 C44/(C11-C12) > 1


def test_bunge_matrix_is_a_rotation_and_known_case():
    g = m.bunge_matrix(30.0, 40.0, 50.0)
    # Bunge's g (sample -> crystal) is the transpose of scipy's active rotation from intrinsic z-x-z angles
    np.testing.assert_allclose(g, Rotation.from_euler('ZXZ', [30, 40, 50], degrees=True).as_matrix().T, atol=1e-14)
    np.testing.assert_allclose(g @ g.T, np.eye(3), atol=1e-14)
    assert np.linalg.det(g) == pytest.approx(1.0)
    # phi1 alone: sample x is seen at -phi1 in the crystal (passive rotation about z)
    np.testing.assert_allclose(
        m.bunge_matrix(30, 0, 0) @ [1, 0, 0], [np.cos(np.radians(30)), -np.sin(np.radians(30)), 0], atol=1e-14
    )


@pytest.mark.parametrize('angles', [(0, 0, 0), (30, 40, 50), (45, 54.7356, 0), (123, 77, 301)])
def test_rotated_stiffness_gives_directional_modulus(angles):
    """E along sample x of a rotated crystal = E along the crystal direction that sample x maps to (g[:, 0])."""
    c = m.sample_stiffnesses(*AL, [angles])[0]
    np.testing.assert_allclose(c, m.rotate_stiffness(m.cubic_stiffness(*AL), m.bunge_matrix(*angles).T), atol=1e-10)
    np.testing.assert_allclose(c, c.T, atol=1e-10)
    e_x, _ = m.moduli_from_compliance(np.linalg.inv(c))
    # the test's own reference: scipy's rotation and the closed-form directional modulus (tests/references.py)
    assert e_x == pytest.approx(directional_youngs(*AL, crystal_direction_of_sample_x(*angles)), rel=1e-12)


def test_isotropic_material_is_rotation_invariant():
    c11, c12, c44 = m.isotropic_cubic_constants(70.0, 0.3)
    lam, mu = 70.0 * 0.3 / (1.3 * 0.4), 70.0 / 2.6  # Lame constants of E = 70, nu = 0.3
    assert (c11, c12, c44) == pytest.approx((lam + 2 * mu, lam, mu), rel=1e-14)
    bounds = m.voigt_reuss_hill(c11, c12, c44, np.random.default_rng(1).uniform(0, 90, (5, 3)))
    for key in ('voigt', 'reuss', 'hill'):
        assert bounds[f'youngs_modulus_{key}'] == pytest.approx(70.0)
        assert bounds[f'poisson_ratio_{key}'] == pytest.approx(0.3)


def test_random_texture_bounds_match_isotropic_voigt_reuss():
    """Many random orientations: the directional bounds tend to the classical isotropic Voigt/Reuss formulas."""
    rng = np.random.default_rng(0)
    n = 4000
    # uniform random orientations: phi1, phi2 uniform, cos(Phi) uniform
    euler = np.column_stack(
        [rng.uniform(0, 360, n), np.degrees(np.arccos(rng.uniform(-1, 1, n))), rng.uniform(0, 360, n)]
    )
    bounds = m.voigt_reuss_hill(*AL, euler)
    c11, c12, c44 = AL
    bulk = (c11 + 2 * c12) / 3
    g_voigt = (c11 - c12 + 3 * c44) / 5
    g_reuss = 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12))
    assert bounds['youngs_modulus_voigt'] == pytest.approx(9 * bulk * g_voigt / (3 * bulk + g_voigt), rel=5e-3)
    assert bounds['youngs_modulus_reuss'] == pytest.approx(9 * bulk * g_reuss / (3 * bulk + g_reuss), rel=5e-3)
    assert bounds['youngs_modulus_reuss'] < bounds['youngs_modulus_hill'] < bounds['youngs_modulus_voigt']


def test_single_grain_bounds_collapse():
    bounds = m.voigt_reuss_hill(*AL, [[10, 20, 30]])
    expected = directional_youngs(*AL, crystal_direction_of_sample_x(10, 20, 30))
    assert bounds['youngs_modulus_voigt'] == pytest.approx(expected, rel=1e-12)
    assert bounds['youngs_modulus_reuss'] == pytest.approx(expected, rel=1e-12)


def test_weighted_bounds_match_the_test_reference():
    """Unequal area fractions: the package's Voigt and Reuss equal the test's own (tests/references.py)."""
    rng = np.random.default_rng(7)
    euler, weights = rng.uniform(0, 180, (9, 3)), rng.uniform(0.1, 1.0, 9)
    bounds = m.voigt_reuss_hill(*AL, euler, weights)
    voigt, reuss = youngs_bounds(*AL, euler, weights)
    assert bounds['youngs_modulus_voigt'] == pytest.approx(voigt, rel=1e-12)
    assert bounds['youngs_modulus_reuss'] == pytest.approx(reuss, rel=1e-12)


def test_born_stability():
    assert m.born_stability_violations(*AL) == []
    errors = m.born_stability_violations(50.0, 60.0, -1.0)
    assert any('C44' in e for e in errors) and any('C11 - C12' in e for e in errors)
    assert m.born_stability_violations(100.0, -60.0, 10.0)[0].startswith('C11 + 2 C12')


def test_von_mises():
    assert m.von_mises(np.diag([2.0, 0, 0])) == pytest.approx(2.0)
    assert m.von_mises(np.eye(3) * 5) == pytest.approx(0.0)

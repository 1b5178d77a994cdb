"""The Sachs and Taylor yield estimates of fcc crystals and polycrystals (``physics.plasticity``), no codes run.

References, none of them the package's own code:
- hand values of Bishop and Hill (Phil. Mag. 42, 414 and 1298 (1951)) for single crystals: Sachs factor 1/m and
  Taylor factor M along [001] (both sqrt(6)), [011] (sqrt(6) and 3 sqrt(6)/2) and [111] (both 3 sqrt(6)/2);
- the random-texture averages of fcc: Taylor's M = 3.06 (Taylor, J. Inst. Met. 62, 307 (1938); 3.067 in Kocks,
  Metall. Trans. 1, 1121 (1970)) and Sachs's <1/m> = 2.24 (Sachs, Z. Ver. Dtsch. Ing. 72, 734 (1928));
- Taylor's M from the dual problem (Bishop and Hill's maximum work: the largest sigma : D over the deviatoric stresses
  that no slip system resolves above tau_c), solved here with slip systems enumerated here;
- the 24 rotations of the cube from scipy's point group 'O', and orientations built from scipy's ``Rotation``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.spatial.transform import Rotation

from aiida_multiscale.physics import plasticity

SQRT6 = math.sqrt(6.0)
HAND_VALUES = {  # direction: (Sachs factor 1/m, Taylor factor M), Bishop and Hill (1951)
    (0, 0, 1): (SQRT6, SQRT6),
    (0, 1, 1): (SQRT6, 1.5 * SQRT6),
    (1, 1, 1): (1.5 * SQRT6, 1.5 * SQRT6),
}


def enumerated_slip_systems() -> list[tuple[np.ndarray, np.ndarray]]:
    """Every <111> normal with every <110> direction perpendicular to it, each counted once up to both signs."""
    normals = [np.array(v, dtype=float) for v in itertools.product((1, -1), repeat=3)]
    directions = [v for v in itertools.product((1, -1, 0), repeat=3) if sorted(map(abs, v)) == [0, 1, 1]]
    systems = {}
    for n in normals:
        for b in directions:
            if np.dot(n, b) == 0:
                # a system and its sign-flipped copies are the same system: key by the canonical signs
                key = (tuple(n * np.sign(n[np.nonzero(n)[0][0]])), tuple(np.array(b) * np.sign(b[np.nonzero(b)[0][0]])))
                systems[key] = (np.array(key[0]) / math.sqrt(3), np.array(key[1]) / math.sqrt(2))
    return list(systems.values())


def orientation_with_x_along(direction, spin: float = 37.0) -> np.ndarray:
    """A Bunge matrix g (sample -> crystal) that carries sample x onto the crystal ``direction``: g @ x = direction.

    Built from scipy's ``Rotation.align_vectors`` (the rotation taking ``direction`` to x is g^-1 = g^T), then turned
    by ``spin`` degrees about sample x, so that the grain is not a symmetric special case in which g and g^T would
    carry x to the same family of directions (which would hide a transposed convention).
    """
    d = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    inverse, _ = Rotation.align_vectors([[1.0, 0.0, 0.0]], [d])
    g = inverse.as_matrix().T @ Rotation.from_euler('x', spin, degrees=True).as_matrix()
    assert np.allclose(g @ [1.0, 0.0, 0.0], d)
    return g


def taylor_by_maximum_work(direction) -> float:
    """M = max sigma : D over deviatoric sigma with |P_s : sigma| <= 1 on every system (tau_c = 1), D unit tension.

    The dual of the package's minimum-shear programme, written separately: stresses instead of slip rates, the test's
    own slip systems and strain rate.
    """
    d = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    strain_rate = 1.5 * np.outer(d, d) - 0.5 * np.eye(3)
    # deviatoric stress in a basis of five unknowns: s11, s22 (s33 = -s11 - s22), s23, s13, s12
    basis = []
    for i, j in ((0, 0), (1, 1)):
        e = np.zeros((3, 3))
        e[i, j], e[2, 2] = 1.0, -1.0
        basis.append(e)
    for i, j in ((1, 2), (0, 2), (0, 1)):
        e = np.zeros((3, 3))
        e[i, j] = e[j, i] = 1.0
        basis.append(e)
    resolved = np.array([[b @ e @ n for e in basis] for n, b in enumerated_slip_systems()])
    work = np.array([np.sum(e * strain_rate) for e in basis])
    result = linprog(-work, A_ub=np.vstack([resolved, -resolved]), b_ub=np.ones(2 * len(resolved)), bounds=(None, None))
    assert result.status == 0
    return -result.fun


@pytest.fixture(scope='module')
def random_texture():
    """5000 orientations uniform on SO(3) (scipy, fixed seed) and the package's estimates for them."""
    g = Rotation.random(5000, random_state=20261207).as_matrix()
    return g, plasticity.sachs_taylor_yield(g, tau_c=1.0)


def test_slip_systems_are_the_twelve_fcc_systems():
    """The module's list is the set of {111}<110> pairs found by enumeration, each once, unit and perpendicular."""
    normals, directions = plasticity.FCC_SLIP_SYSTEMS
    assert normals.shape == directions.shape == (12, 3)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1) and np.allclose(np.linalg.norm(directions, axis=1), 1)
    assert np.allclose(np.sum(normals * directions, axis=1), 0)

    def key(n, b):  # sign-free: the symmetric Schmid tensor up to sign, rounded
        p = np.outer(b, n) + np.outer(n, b)
        return tuple(np.round(p * np.sign(p.flat[np.argmax(np.abs(p))]), 9).ravel())

    expected = {key(n, b) for n, b in enumerated_slip_systems()}
    assert len(expected) == 12
    assert {key(n, b) for n, b in zip(normals, directions)} == expected


@pytest.mark.parametrize('direction', list(HAND_VALUES))
def test_single_crystal_hand_values(direction):
    """Bishop and Hill's values along [001], [011], [111], through crystal directions, matrices and Euler angles."""
    sachs, taylor = HAND_VALUES[direction]
    assert plasticity.sachs_factors(direction) == pytest.approx(sachs, abs=1e-3)
    assert plasticity.taylor_factor(direction) == pytest.approx(taylor, abs=1e-3)

    g = orientation_with_x_along(direction)
    euler = Rotation.from_matrix(g.T).as_euler('ZXZ', degrees=True)  # Bunge (phi1, Phi, phi2): g^T is scipy's ZXZ
    for orientation in (g[None], euler[None]):
        result = plasticity.sachs_taylor_yield(orientation, tau_c=10e6)
        assert result['sachs_factor'] == pytest.approx(sachs, abs=1e-3)
        assert result['taylor_factor'] == pytest.approx(taylor, abs=1e-3)
        assert result['yield_strength_sachs'] == pytest.approx(10e6 * sachs, rel=1e-6)
        assert result['yield_strength_taylor'] == pytest.approx(10e6 * taylor, rel=1e-6)


def test_bunge_convention_hand_orientation():
    """Bunge (90, 45, 0) carries sample x to crystal [0 -1 1]/sqrt 2 (g[:, 0] by hand): a <011> grain."""
    result = plasticity.sachs_taylor_yield([[90.0, 45.0, 0.0]], tau_c=1.0)
    assert result['sachs_factor'] == pytest.approx(SQRT6, abs=1e-3)
    assert result['taylor_factor'] == pytest.approx(1.5 * SQRT6, abs=1e-3)
    # the same grain pulled along sample z: g[:, 2] = (sin phi2 sin Phi, cos phi2 sin Phi, cos Phi) = [011]/sqrt 2
    along_z = plasticity.sachs_taylor_yield([[90.0, 45.0, 0.0]], tau_c=1.0, loading_direction=(0, 0, 1))
    assert along_z['taylor_factor'] == pytest.approx(1.5 * SQRT6, abs=1e-3)
    # the identity orientation pulled along y is a <100> grain
    along_y = plasticity.sachs_taylor_yield([[0.0, 0.0, 0.0]], tau_c=1.0, loading_direction=(0, 1, 0))
    assert along_y['taylor_factor'] == pytest.approx(SQRT6, abs=1e-3)


@pytest.mark.parametrize('seed', [1, 2, 3, 4, 5])
def test_taylor_equals_maximum_work(seed):
    """Strong duality: the minimum-shear M equals Bishop and Hill's maximum-work M (test's own LP), to 1e-6."""
    direction = np.random.default_rng(seed).normal(size=3)
    assert plasticity.taylor_factor(direction) == pytest.approx(taylor_by_maximum_work(direction), abs=1e-6)


def test_random_texture_taylor_factor(random_texture):
    """Random fcc: <M> = 3.06 (Taylor 1938; 3.067 in Kocks 1970).

    5000 grains: the spread of M over grains is 0.40, so the standard error of the mean is 0.006 and the tolerance
    0.025 is about 4 standard errors (it also covers the two literature values).
    """
    _, result = random_texture
    assert result['taylor_factor'] == pytest.approx(3.06, abs=0.025)
    assert np.std(result['taylor_factors']) < 0.5  # the spread the tolerance was set with


def test_random_texture_sachs_factor():
    """Random fcc: <1/m> = 2.24 (Sachs 1928), over 2 x 10^5 orientations (no linear programme: cheap).

    The spread of 1/m over grains is 0.24, so the standard error is 0.0005; the tolerance 0.01 covers the rounding
    of the literature value (a dense numerical average gives 2.232).
    """
    g = Rotation.random(200_000, random_state=7).as_matrix()
    factors = plasticity.sachs_factors(plasticity.crystal_loading_directions(g))
    assert factors.mean() == pytest.approx(2.24, abs=0.01)


def test_sachs_below_taylor_every_grain(random_texture):
    """1/m <= M grain by grain (the uniaxial stress at first slip is one of Bishop and Hill's admissible states)."""
    _, result = random_texture
    assert np.all(result['sachs_factors'] <= result['taylor_factors'] + 1e-9)
    assert result['yield_strength_static'] <= result['yield_strength_sachs'] <= result['yield_strength_taylor']
    # the extreme grains: 1/m from 2 (m = 1/2, near <112>-<123> single slip) up to 3 sqrt(6)/2 at <111>
    assert 2.0 - 1e-9 <= result['sachs_factors'].min() and result['sachs_factors'].max() <= 1.5 * SQRT6 + 1e-9


def test_cubic_symmetry_invariance(random_texture):
    """A grain rotated by any of the cube's 24 rotations (crystal side, g -> S g) has the same factors."""
    g, result = random_texture
    cube = Rotation.create_group('O').as_matrix()
    assert len(cube) == 24
    grains = g[:5]
    for s in cube:
        rotated = plasticity.sachs_taylor_yield(np.einsum('ij,njk->nik', s, grains), tau_c=1.0)
        assert np.allclose(rotated['sachs_factors'], result['sachs_factors'][:5], atol=1e-9)
        assert np.allclose(rotated['taylor_factors'], result['taylor_factors'][:5], atol=1e-6)
    # compression-tension symmetry of the estimates: -x is the same axis
    flipped = plasticity.sachs_taylor_yield(grains, tau_c=1.0, loading_direction=(-1, 0, 0))
    assert np.allclose(flipped['taylor_factors'], result['taylor_factors'][:5], atol=1e-6)


def test_aggregate_weights_and_grain_resistances():
    """Two grains, [001] (weight 1/4, tau_c 10 MPa) and [111] (3/4, 20 MPa): weighted means by hand."""
    grains = np.array([orientation_with_x_along((0, 0, 1)), orientation_with_x_along((1, 1, 1))])
    result = plasticity.sachs_taylor_yield(grains, tau_c=[10e6, 20e6], weights=[1.0, 3.0])
    sachs = 0.25 * 10e6 * SQRT6 + 0.75 * 20e6 * 1.5 * SQRT6
    taylor = 0.25 * 10e6 * SQRT6 + 0.75 * 20e6 * 1.5 * SQRT6  # both grains have 1/m = M
    assert result['yield_strength_sachs'] == pytest.approx(sachs, rel=1e-6)
    assert result['yield_strength_taylor'] == pytest.approx(taylor, rel=1e-6)
    assert result['tau_c_mean'] == pytest.approx(17.5e6)
    assert result['sachs_factor'] == pytest.approx(0.25 * SQRT6 + 0.75 * 1.5 * SQRT6, rel=1e-6)
    assert result['taylor_factor_effective'] == pytest.approx(taylor / 17.5e6, rel=1e-6)
    assert result['yield_strength_static'] == pytest.approx(10e6 * SQRT6, rel=1e-6)


def test_hall_petch_slip_resistance():
    """tau_c = tau0 + k_tau / sqrt(d): 10 MPa + 0.05 MPa m^0.5 / sqrt(25 um) = 10 + 10 = 20 MPa."""
    assert plasticity.hall_petch_slip_resistance(10e6, 0.05e6, 25e-6) == pytest.approx(20e6)
    sizes = np.array([1e-6, 100e-6])
    assert np.allclose(plasticity.hall_petch_slip_resistance(10e6, 0.05e6, sizes), [60e6, 15e6])
    with pytest.raises(ValueError, match='in m'):
        plasticity.hall_petch_slip_resistance(10e6, 0.05e6, 25.0)  # micrometres passed as metres
    with pytest.raises(ValueError, match='> 0'):
        plasticity.hall_petch_slip_resistance(10e6, 0.05e6, [25e-6, 0.0])
    with pytest.raises(ValueError, match='k_tau'):
        plasticity.hall_petch_slip_resistance(10e6, -1.0, 25e-6)


def test_bad_input_is_named():
    """Wrong shapes or signs fail with a message naming the argument."""
    with pytest.raises(ValueError, match='orientations'):
        plasticity.sachs_taylor_yield(np.zeros((4, 2)), tau_c=1.0)
    with pytest.raises(ValueError, match='proper rotations'):
        plasticity.sachs_taylor_yield(-np.eye(3)[None], tau_c=1.0)
    with pytest.raises(ValueError, match='tau_c'):
        plasticity.sachs_taylor_yield([[0, 0, 0], [10, 20, 30]], tau_c=[1.0])
    with pytest.raises(ValueError, match='tau_c'):
        plasticity.sachs_taylor_yield([[0, 0, 0]], tau_c=-1.0)
    with pytest.raises(ValueError, match='weights'):
        plasticity.sachs_taylor_yield([[0, 0, 0], [10, 20, 30]], tau_c=1.0, weights=[1.0, -1.0])

"""Periodic RVE of a grain map (MOOSE homogenisation): effective elastic constants against analytic references.

The references are written in the tests (here and in ``rve_helpers.py``), separately from the package: the
isotropic moduli from Lame's constants, the directional modulus of a cubic crystal along <100>, and the Voigt and
Reuss bounds from rotations made with scipy's ``Rotation`` (not the package's Bunge matrices) and a rank-4 tensor
rotation.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from rve_helpers import CU, crystal_to_sample, cubic_elastic, random_euler, sample_stiffness, voigt_reuss, voronoi_map

from aiida_multiscale.data.microstructure import MicrostructureData
from aiida_multiscale.engines.moose import rve
from aiida_multiscale.workflows.functions.rve import validate_rve_parameters
from aiida_multiscale.workflows.rve import RveElasticityWorkChain


# ------------------------------------------------------------------------------------------- independent references
def test_reference_rotation_convention():
    """The test's own rotation against a literature orientation: Bunge (0, 54.7356, 45) puts crystal [111] on z."""
    r = crystal_to_sample([0.0, np.degrees(np.arccos(1 / np.sqrt(3))), 45.0])
    np.testing.assert_allclose(r @ (np.ones(3) / np.sqrt(3)), [0, 0, 1], atol=1e-12)


# ------------------------------------------------------------------------------------------------------- helpers
def _run(codes, grain_ids, euler, constants, **parameters):
    micro = MicrostructureData(grain_ids=grain_ids, pixel_size=1e-6, euler_angles=euler)
    elastic = cubic_elastic(constants)
    builder = RveElasticityWorkChain.get_builder()
    builder.moose.code = codes['moose']
    builder.moose.metadata.options.max_wallclock_seconds = 600
    builder.microstructure = micro
    builder.elastic = elastic
    if parameters:
        builder.parameters = orm.Dict(parameters)
    results, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    return results['elasticity'], results['stiffness'].get_array('stiffness'), micro


# ------------------------------------------------------------------------------------------------ real MOOSE runs
@pytest.mark.real_code
def test_isotropic_crystal_any_map_real(codes):
    """C11 - C12 = 2 C44: every grain is the same isotropic solid, so C_eff, E and nu are its own, for any map."""
    youngs, poisson = 70.0e9, 0.33  # Pa
    lam = youngs * poisson / ((1 + poisson) * (1 - 2 * poisson))
    mu = youngs / (2 * (1 + poisson))
    constants = ((lam + 2 * mu) / 1e9, lam / 1e9, mu / 1e9)  # GPa
    grains = voronoi_map(5, (10, 12), seed=4)
    elasticity, stiffness, _ = _run(codes, grains, random_euler(grains.max() + 1, seed=5), constants)
    assert elasticity.value('youngs_modulus', 'Pa') == pytest.approx(youngs, rel=1e-6)
    assert elasticity.value('poisson_ratio') == pytest.approx(poisson, rel=1e-6)
    assert elasticity.value('c11_eff', 'Pa') == pytest.approx(lam + 2 * mu, rel=1e-6)
    assert elasticity.value('c12_eff', 'Pa') == pytest.approx(lam, rel=1e-6)
    assert elasticity.value('c44_eff', 'Pa') == pytest.approx(mu, rel=1e-6)
    expected = np.zeros((6, 6))
    expected[:3, :3] = lam
    expected[np.diag_indices(6)] = [lam + 2 * mu] * 3 + [mu] * 3
    np.testing.assert_allclose(stiffness, expected, atol=1e-6 * (lam + 2 * mu))


@pytest.mark.real_code
def test_copper_aggregate_inside_voigt_reuss_real(codes):
    """Cu (Zener ratio 3.2): C_eff lies between the Voigt and Reuss bounds of the same area-weighted orientations.

    Hill (1952): C_Voigt - C_eff and S_Reuss - S_eff are positive semi-definite, so every directional modulus lies
    between the bounds'.  The bulk modulus is exact: all cubic grains share K = (C11 + 2 C12) / 3, and a uniform
    hydrostatic strain is then an exact solution.
    """
    grains = voronoi_map(8, (16, 16), seed=11)
    euler = random_euler(grains.max() + 1, seed=12)
    elasticity, stiffness, micro = _run(codes, grains, euler, CU)
    weights = np.bincount(grains.ravel()) / grains.size
    np.testing.assert_allclose(elasticity.metadata['grain_fractions'], weights)  # one element per pixel
    voigt, reuss = voigt_reuss(np.array(CU) * 1e9, euler, weights)
    e_voigt, e_reuss = 1 / np.linalg.inv(voigt)[0, 0], 1 / reuss[0, 0]
    youngs = elasticity.value('youngs_modulus', 'Pa')
    assert e_reuss < youngs < e_voigt, (e_reuss, youngs, e_voigt)
    # Not at a bound: the bounds are 30 % apart for Cu; the RVE sits well inside.
    assert (youngs - e_reuss) / (e_voigt - e_reuss) == pytest.approx(0.5, abs=0.4)
    scale = np.max(voigt)
    assert np.linalg.eigvalsh(voigt - stiffness).min() > -1e-8 * scale
    compliance = np.linalg.inv(stiffness)
    assert np.linalg.eigvalsh(reuss - compliance).min() > -1e-8 * np.max(reuss)
    bulk = stiffness[:3, :3].sum() / 9
    assert bulk == pytest.approx((CU[0] + 2 * CU[1]) / 3 * 1e9, rel=1e-8)
    assert micro.grain_count == grains.max() + 1


@pytest.mark.real_code
def test_single_grain_along_100_real(codes):
    """One grain turned 35 degrees about x (Bunge (0, 35, 0)): x stays a <100> axis, so E_x = E<100> exactly."""
    c11, c12, c44 = CU
    e100 = (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)  # GPa
    grains = np.zeros((4, 4), dtype=int)
    elasticity, stiffness, _ = _run(codes, grains, [[0.0, 35.0, 0.0]], CU, loading_axis='x')
    assert elasticity.value('youngs_modulus', 'GPa') == pytest.approx(e100, rel=1e-6)
    # The rotation acted: y is no longer a cube axis, and its modulus differs from E<100> (Cu: by tens of per cent).
    e_y = 1 / np.linalg.inv(stiffness)[1, 1] / 1e9
    assert abs(e_y / e100 - 1) > 0.1
    # The whole matrix is the rotated crystal's: a single grain is homogeneous under periodic conditions.
    np.testing.assert_allclose(stiffness, sample_stiffness(np.array(CU) * 1e9, [0.0, 35.0, 0.0]), atol=1e-6 * c11 * 1e9)


# ------------------------------------------------------------------------------------------ refusals before running
def test_refusals_before_running():
    grains = np.zeros((4, 4), dtype=int)
    with pytest.raises(ValueError, match='Born-stable'):
        rve.build_rve_input(grains, [[0, 0, 0]], 100.0, 120.0, 50.0)
    with pytest.raises(ValueError, match='one .* row per grain'):
        rve.build_rve_input(np.ones((4, 4), dtype=int), [[0, 0, 0]], *CU)
    with pytest.raises(ValueError, match='lower mesh_scale'):
        rve.build_rve_input(np.zeros((300, 300), dtype=int), [[0, 0, 0]], *CU)
    assert 'unknown keys' in validate_rve_parameters(orm.Dict({'strain': 1e-3}))
    assert 'layers' in validate_rve_parameters(orm.Dict({'layers': 2.5}))
    assert 'loading_axis' in validate_rve_parameters(orm.Dict({'loading_axis': 'w'}))
    assert validate_rve_parameters(orm.Dict({'mesh_scale': 0.5, 'layers': 2})) is None


def test_input_has_one_orientation_per_element():
    """``layers`` copies of the (coarsened) map, x fastest: what libMesh's generated box numbers as elements."""
    grains = np.arange(4).reshape(2, 2).repeat(2, axis=0).repeat(2, axis=1)  # 4 x 4 pixels, 4 grains
    euler = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0], [70.0, 80.0, 90.0], [100.0, 110.0, 120.0]])
    model = rve.build_rve_input(grains, euler, *CU, mesh_scale=0.5, layers=3)
    rows = np.loadtxt(model.files[rve.EULER_FILE].decode().splitlines(), delimiter=',')
    np.testing.assert_allclose(rows, np.tile(euler, (3, 1)))
    assert 'nz = 3' in model.input_text and 'HomogenizedTotalLagrangianStressDivergence' in model.input_text


def test_incomplete_or_unconstrained_load_cases_fake():
    """A run without a load case or a constraint that did not act (wrong average strain) is refused, not parsed."""
    names = ('time', *rve.STRESS_POSTPROCESSORS, *rve.STRAIN_POSTPROCESSORS)
    series = {name: np.zeros(6) for name in names}
    series['time'] = np.array([0.0, 2, 3, 4, 5, 6])  # the first load case is missing
    with pytest.raises(ValueError, match='load case 1 of 6'):
        rve.effective_stiffness(series, 1e-3)
    series = {name: np.zeros(7) for name in names}
    series['time'] = np.arange(7.0)
    with pytest.raises(ValueError, match='did not act'):
        rve.effective_stiffness(series, 1e-3)  # average strains all zero


def _hill_random_texture(c11, c12, c44) -> float:
    """E of a random cubic aggregate by Hill's average (closed-form Voigt and Reuss shear moduli; Hill, Proc. Phys.
    Soc. A 65, 349 (1952)): the value an RVE of many randomly oriented grains tends to."""
    bulk = (c11 + 2 * c12) / 3
    shear_voigt = (c11 - c12 + 3 * c44) / 5
    shear_reuss = 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12))
    shear = (shear_voigt + shear_reuss) / 2
    return 9 * bulk * shear / (3 * bulk + shear)


@pytest.mark.real_code
def test_copper_closer_to_hill_as_grains_are_added_real(codes):
    """Cu (Zener ratio 3.2), three RVE sizes (4, 16 and 64 grains, about 9 elements each), three seeds each: every E
    lies in the Voigt-Reuss interval of its own grains, and the RMS distance to the random aggregate's Hill E shrinks
    as grains are added (the orientation sampling error falls like 1/sqrt(grains)).

    A fixed set of seeds, so the test is deterministic; with 4 grains one unlucky draw can sit near Hill, which is
    why the distance is the RMS over three seeds, not one map's.
    """
    hill = _hill_random_texture(*CU) * 1e9  # 127.4 GPa for Simmons and Wang's constants
    rms = []
    for grains, edge in ((4, 6), (16, 12), (64, 24)):
        distances = []
        for seed in (21, 22, 23):
            grain_ids = voronoi_map(grains, (edge, edge), seed=seed)
            euler = random_euler(grain_ids.max() + 1, seed=seed + 100)
            elasticity, _, _ = _run(codes, grain_ids, euler, CU)
            youngs = elasticity.value('youngs_modulus', 'Pa')
            weights = np.bincount(grain_ids.ravel()) / grain_ids.size
            voigt, reuss = voigt_reuss(np.array(CU) * 1e9, euler, weights)
            assert 1 / reuss[0, 0] < youngs < 1 / np.linalg.inv(voigt)[0, 0], (grains, seed)
            distances.append((youngs - hill) / hill)
        rms.append(float(np.sqrt(np.mean(np.square(distances)))))
        print(f'Cu RVE, {grains} grains: E - E_Hill = {", ".join(f"{d:+.3f}" for d in distances)} (relative)')
    assert rms[0] > rms[1] > rms[2], rms
    # 64 columnar grains: within a few per cent of the 3-D aggregate's Hill value (a 2-D grain map is not a 3-D
    # aggregate, so not closer than that).
    assert rms[2] < 0.05, rms

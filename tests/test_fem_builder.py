"""Physics of the polycrystal elasticity input on the real MOOSE: closed forms, the rotation convention, bounds."""

from __future__ import annotations

import pathlib
import subprocess

import numpy as np
import pytest
from references import crystal_direction_of_sample_x, directional_youngs, youngs_bounds
from scipy.spatial.transform import Rotation

from aiida_multiscale.engines.moose.exodus import read_element_variables
from aiida_multiscale.engines.moose.solid_mechanics import build_elasticity_input, element_grain_map

AL = (108.2, 61.3, 28.5)  # GPa


@pytest.fixture
def moose(codes):
    """The MOOSE executable of the test set-up's ``moose`` code (the one every real-code test runs)."""
    return str(codes['moose'].get_executable())


def _run(moose, tmp_path: pathlib.Path, grain_ids, euler, constants=AL, **kwargs) -> tuple[dict, pathlib.Path]:
    model = build_elasticity_input(grain_ids, euler, *constants, **kwargs)
    (tmp_path / 'input.i').write_text(model.input_text)
    for name, content in model.files.items():
        (tmp_path / name).write_bytes(content)
    result = subprocess.run(
        [moose, '-i', 'input.i', '--color', 'off'], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:]
    rows = (tmp_path / 'elasticity.csv').read_text().split()
    values = dict(zip(rows[0].split(','), map(float, rows[-1].split(','))))
    values['E'] = values['average_stress_xx'] / values['average_strain_xx']
    values['nu'] = -values['average_strain_yy'] / values['average_strain_xx']
    return values, tmp_path / 'elasticity.e'


@pytest.mark.real_code
def test_single_crystal_100(moose, tmp_path):
    values, _ = _run(moose, tmp_path, np.zeros((3, 6), int), [[0, 0, 0]])
    assert values['average_strain_xx'] == pytest.approx(1e-3)
    c11, c12, _ = AL
    assert values['E'] == pytest.approx((c11 - c12) * (c11 + 2 * c12) / (c11 + c12), rel=5e-3)  # E along [100]
    # uniaxial stress: no stress concentration in a homogeneous crystal
    assert values['max_vonmises'] / values['average_stress_xx'] == pytest.approx(1.0, rel=1e-3)


@pytest.mark.real_code
def test_rotated_crystal_pins_the_euler_convention(moose, tmp_path):
    angles = (30.0, 40.0, 50.0)
    # the test's own references (tests/references.py): scipy's rotation and the closed-form cubic compliance
    expected = directional_youngs(*AL, crystal_direction_of_sample_x(*angles))  # crystal -> sample = g^T
    active = Rotation.from_euler('ZXZ', angles, degrees=True).as_matrix()  # = g^T
    wrong = directional_youngs(*AL, active[:, 0])  # what the opposite convention (g instead of g^T) would give
    assert abs(wrong / expected - 1) > 0.03  # the two conventions are distinguishable with these angles
    values, _ = _run(moose, tmp_path, np.zeros((3, 6), int), [angles])
    assert values['E'] == pytest.approx(expected, rel=1e-2)


@pytest.mark.real_code
def test_isotropic_material(moose, tmp_path):
    # Lame constants of E = 70, nu = 0.33: C11 = lambda + 2 mu, C12 = lambda, C44 = mu (= (C11 - C12)/2)
    lam, mu = 70.0 * 0.33 / (1.33 * (1 - 0.66)), 70.0 / (2 * 1.33)
    constants = (lam + 2 * mu, lam, mu)
    values, _ = _run(moose, tmp_path, np.array([[0, 1], [1, 0]]), [[10, 20, 30], [200, 100, 7]], constants=constants)
    assert values['E'] == pytest.approx(70.0, rel=5e-3)
    assert values['nu'] == pytest.approx(0.33, rel=5e-3)


@pytest.mark.real_code
def test_polycrystal_inside_its_bounds_and_orientation_reaches_its_elements(moose, tmp_path):
    rng = np.random.default_rng(3)
    n, size = 10, 24
    seeds = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    dx = np.abs(xx[..., None] - seeds[:, 0])
    dy = np.abs(yy[..., None] - seeds[:, 1])
    grain_ids = np.argmin(np.minimum(dx, size - dx) ** 2 + np.minimum(dy, size - dy) ** 2, axis=-1)
    euler = np.column_stack(
        [rng.uniform(0, 360, n), np.degrees(np.arccos(rng.uniform(-1, 1, n))), rng.uniform(0, 360, n)]
    )
    values, exodus = _run(moose, tmp_path, grain_ids, euler)
    weights = np.bincount(grain_ids.ravel(), minlength=n) / grain_ids.size
    voigt, reuss = youngs_bounds(*AL, euler, weights)  # the test's own bounds (tests/references.py)
    assert reuss < values['E'] < voigt
    assert values['max_vonmises'] / values['average_stress_xx'] > 1.0  # grain-boundary stress concentration


@pytest.mark.real_code
def test_orientation_reaches_its_elements(moose, tmp_path):
    """Stripes along x (iso-strain): each stripe's stress follows its own directional modulus, row by row."""
    euler = [[0, 0, 0], [45, 54.7356, 0], [30, 0, 0], [20, 10, 0]]  # <100>, ~<111>, <210>-ish, in between
    grain_ids = np.repeat(np.arange(4), 2)[:, None] * np.ones((1, 12), int)  # 8 rows (y) x 12 columns (x)
    _, exodus = _run(moose, tmp_path, grain_ids, euler)
    stress = read_element_variables(exodus, ['stress_xx'])['stress_xx'].reshape(grain_ids.shape)
    stripe_stress = np.array([stress[grain_ids == k].mean() for k in range(4)])
    modulus = np.array([directional_youngs(*AL, crystal_direction_of_sample_x(*angles)) for angles in euler])
    np.testing.assert_array_equal(np.argsort(stripe_stress), np.argsort(modulus))
    np.testing.assert_allclose(stripe_stress / 1e-3, modulus, rtol=0.1)


@pytest.mark.unit
def test_builder_validation_and_mesh_mapping():
    with pytest.raises(ValueError, match='C11 - C12'):
        build_elasticity_input(np.zeros((2, 2), int), [[0, 0, 0]], 50.0, 60.0, 10.0)
    with pytest.raises(ValueError, match='applied_strain'):
        build_elasticity_input(np.zeros((2, 2), int), [[0, 0, 0]], *AL, applied_strain=0.2)
    grains = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(element_grain_map(grains, 2, 2), [[5, 7], [13, 15]])
    model = build_elasticity_input(grains, np.zeros((16, 3)), *AL, mesh_scale=0.5)
    assert model.element_grains.shape == (2, 2)
    assert len(model.files['euler_angles.csv'].decode().split()) == 4
    assert 'nx = 2' in model.input_text and 'allow_renumbering = false' in model.input_text


@pytest.mark.unit
def test_input_snapshot(file_regression):
    """The rendered input of a 2-grain map, so that any change to the model shows up in review."""
    model = build_elasticity_input(np.array([[0, 0, 1], [0, 1, 1]]), [[0, 0, 0], [30, 40, 50]], *AL)
    file_regression.check(model.input_text, extension='.i')
    assert model.files['euler_angles.csv'].decode().splitlines() == [
        '0,0,0',
        '0,0,0',
        '30,40,50',
        '0,0,0',
        '30,40,50',
        '30,40,50',
    ]

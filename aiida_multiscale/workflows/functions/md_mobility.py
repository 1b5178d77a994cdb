"""The mobility stage of the MD rung: driven runs at several temperatures -> M(T) -> Arrhenius fit -> ``gb_mobility``.

The method is the synthetic driving force in its energy-conserving form (ECO-DF, LAMMPS ``fix orient/eco``; see
:mod:`aiida_multiscale.physics.mobility`).  The plan of runs (:func:`run_plan`) and the analysis
(:func:`mobility_results`) are plain functions, so that the work chain can check the runs before it stores anything
and the calcfunction :func:`analyse_gb_mobility` stores exactly what the check saw.
"""

from __future__ import annotations

import io
import math
import typing as t

from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.lammps import bicrystal as bicrystal_builder
from aiida_multiscale.engines.lammps import mobility as engine
from aiida_multiscale.physics import mobility as physics
from aiida_multiscale.physics.units import factor

__all__ = (
    'METHOD',
    'analyse_gb_mobility',
    'analyse_lattice_constants',
    'build_mobility_inputs',
    'mobility_results',
    'mobility_temperatures',
    'results_of_runs',
    'run_plan',
)

METHOD = (
    'synthetic driving force, energy-conserving form (ECO-DF: Schratt and Mohles, Comput. Mater. Sci. 182, 109774 '
    '(2020); LAMMPS fix orient/eco), periodic Sigma5(310)[001] bicrystal with two boundaries, NPT with the xz tilt '
    'barostatted (the boundary is shear-coupled)'
)
#: z-score below which two mobilities (or speeds) count as equal in the linearity and reversal checks.
AGREEMENT_Z = 2.0


def mobility_temperatures(mobility: t.Mapping, melting_point: float) -> list[float]:
    """The temperatures (K) of the runs: the homologous fractions x the melting point, to 0.1 K, ascending."""
    return sorted(round(float(f) * float(melting_point), 1) for f in mobility['homologous_temperatures'])


def run_plan(mobility: t.Mapping, temperatures: t.Sequence[float]) -> list[dict]:
    """Every driven run: ``{label, index, temperature, u0, seed, role}``.

    ``role`` is ``replica`` (the runs that give M(T)), ``half_force`` (u0 / 2 at the middle temperature, the lower of
    two: the velocity must be linear in P) or ``reversed`` (-u0 there: the boundary must move back as fast).  Seeds
    are fixed by the position in the plan, so a rerun with the same parameters is the same run (and AiiDA's caching can
    reuse it).
    """
    u0 = float(mobility['u0'])
    runs = []
    for index, temperature in enumerate(temperatures):
        for replica in range(int(mobility['replicas'])):
            runs.append(
                {
                    'label': f'mobility_T{index}_r{replica}',
                    'index': index,
                    'temperature': temperature,
                    'u0': u0,
                    'seed': 1000 * (index + 1) + replica + 1,
                    'role': 'replica',
                }
            )
    if mobility['linearity_check']:
        middle = (len(temperatures) - 1) // 2
        for role, value in (('half_force', u0 / 2), ('reversed', -u0)):
            runs.append(
                {
                    'label': f'mobility_T{middle}_{role}',
                    'index': middle,
                    'temperature': temperatures[middle],
                    'u0': value,
                    'seed': 1000 * (middle + 1) + 101 + len(runs),
                    'role': role,
                }
            )
    return runs


def _velocity(text: str, mobility: t.Mapping) -> tuple[physics.Velocity, dict]:
    """The boundary velocity of one run (A/ps, into grain 1) with its block std, and what the run looked like."""
    run = engine.parse_boundary_file(text)
    window = physics.steady_window(
        run['time'], run['thickness'], run['lz'], discard=float(mobility['discard']),
        min_thickness=float(mobility['min_thickness']),
    )  # fmt: skip
    displacement = physics.boundary_displacement(run['thickness'])
    stride = max(1, math.ceil(len(displacement) / 200))
    velocity = physics.migration_velocity(run['time'], displacement, window=window, blocks=int(mobility['blocks']))
    info = {
        'window_ps': list(window),
        'displacement_angstrom': float(displacement[-1]),
        'mean_temperature': float(run['temperature'].mean()),
        'duration_ps': float(run['time'][-1]),
        'lattice_constant_from_box': engine.box_lattice_constant(run['lx'], run['ly'], tuple(mobility['repeats'])),
        # The trajectory for the pictures, thinned to at most 200 points.
        'time_ps': [float(x) for x in run['time'][::stride]],
        'boundary_displacement_angstrom': [float(x) for x in displacement[::stride]],
    }
    return velocity, info


def _agreement(a: float, a_std: float, b: float, b_std: float) -> dict:
    z = abs(a - b) / math.hypot(a_std, b_std) if (a_std or b_std) else math.inf
    return {'values': [a, b], 'stds': [a_std, b_std], 'z': z, 'verdict': 'passed' if z <= AGREEMENT_Z else 'failed'}


def mobility_results(
    mobility: t.Mapping, temperatures: t.Sequence[float], lattice: t.Sequence[float], texts: t.Mapping[str, str]
) -> dict:
    """M(T) per temperature, the Arrhenius fit and the linearity checks from the boundary files of the plan's runs.

    :param texts: ``{label: content of the boundary file}`` for every run of :func:`run_plan`.
    :raises physics.BoundaryNotMovingError: when the replicas of a temperature did not move the boundary significantly
        in the driven direction (no zero or negative mobility is ever handed on).
    :raises ValueError: when a run has no steady window or too few samples (the message names the setting to change).
    """
    plan = run_plan(mobility, temperatures)
    runs, rows = [], []
    for index, temperature in enumerate(temperatures):
        replicas = [r for r in plan if r['index'] == index and r['role'] == 'replica']
        velocities = []
        for run in replicas:
            velocity, info = _velocity(texts[run['label']], mobility)
            velocities.append(velocity)
            runs.append({**run, 'velocity': velocity.value, 'velocity_std': velocity.std, **info})
        combined = physics.combine_velocities(velocities)
        try:
            result = physics.mobility(combined, float(mobility['u0']), lattice[index])
        except physics.BoundaryNotMovingError as error:
            raise physics.BoundaryNotMovingError(f'at {temperature:g} K: {error}') from None
        rows.append(
            {
                'temperature': temperature,
                'mobility': result.value,
                'std': result.std,
                'ln_std': result.ln_std,
                'velocity': result.velocity,
                'velocity_std': result.velocity_std,
                'pressure': result.pressure,
                'lattice_constant': lattice[index],
                'replicas': len(replicas),
            }
        )
    fit = physics.fit_arrhenius(
        [r['temperature'] for r in rows], [r['mobility'] for r in rows], [r['ln_std'] for r in rows]
    )
    checks = {}
    for role in ('half_force', 'reversed'):
        extra = [r for r in plan if r['role'] == role]
        if not extra:
            continue
        run = extra[0]
        velocity, info = _velocity(texts[run['label']], mobility)
        runs.append({**run, 'velocity': velocity.value, 'velocity_std': velocity.std, **info})
        row = rows[run['index']]
        to_si = factor('angstrom/ps', 'm/s')
        if role == 'half_force':
            pressure = physics.driving_pressure(run['u0'], lattice[run['index']])
            driven = math.copysign(1.0, run['u0']) * velocity.value * to_si
            checks['linearity'] = {
                **_agreement(row['mobility'], row['std'], driven / pressure, velocity.std * to_si / pressure),
                'what': f'M at u0 = {mobility["u0"]:g} and {run["u0"]:g} eV/atom, {run["temperature"]:g} K (m^4/(J s))',
            }
        else:
            speed = -velocity.value * to_si  # u0 < 0 drives the boundary out of grain 1
            checks['reversal'] = {
                **_agreement(row['velocity'], row['velocity_std'], speed, velocity.std * to_si),
                'what': f'speed in the driven direction at +-{mobility["u0"]:g} eV/atom, '
                f'{run["temperature"]:g} K (m/s)',
            }
    return {'rows': rows, 'fit': fit, 'checks': checks, 'runs': runs}


def results_of_runs(mobility: t.Mapping, temperatures: t.Sequence[float], lattice: HandoffData, retrieved) -> dict:
    """:func:`mobility_results` from the runs' retrieved folders (``{label: FolderData}``) and the ``a(T)`` handoff:
    what the work chain checks before it stores anything and what :func:`analyse_gb_mobility` stores."""
    lattice_constants = [lattice.value(f'lattice_constant_{i}', 'angstrom') for i in range(len(temperatures))]
    texts = {
        label: folder.base.repository.get_object_content(engine.BOUNDARY_FILENAME)
        for label, folder in retrieved.items()
    }
    return mobility_results(mobility, temperatures, lattice_constants, texts)


@calcfunction
def analyse_lattice_constants(parameters: orm.Dict, temperatures: orm.List, **retrieved) -> HandoffData:
    """a(T), the zero-pressure lattice constant of the potential at each temperature of the mobility runs (NPT).

    ``retrieved``: ``lattice_<i>`` -> the retrieved folder of the run at ``temperatures[i]``.  The std is that of the
    mean from block averages (the barostat oscillates, so the samples are correlated).
    """
    quantities, rows = {}, []
    for index, temperature in enumerate(temperatures.get_list()):
        text = retrieved[f'lattice_{index}'].base.repository.get_object_content(engine.LATTICE_FILENAME)
        result = engine.parse_lattice_file(text)
        quantities[f'lattice_constant_{index}'] = {
            'value': result['lattice_constant'],
            'unit': 'angstrom',
            'std': result['std'],
            'note': f'zero-pressure NPT of a bulk cube at {temperature:g} K (target), mean over the run; '
            'std of the mean from 5 block averages',
        }
        rows.append({'temperature': temperature, **result})
    return HandoffData(quantities, from_scale='md', to_scale='md', metadata={'runs': rows})


@calcfunction
def build_mobility_inputs(element: orm.Str, lattice: HandoffData, parameters: orm.Dict) -> dict:
    """Per temperature i: ``bicrystal_<i>`` (the Sigma5 bicrystal at a(T)) and ``orientation_<i>`` (the
    ``fix orient/eco`` file at a(T)): the order parameter compares each atom's neighbours with the file's vectors, so
    both must be at the temperature's own lattice constant, not at the 0 K a0."""
    repeats = tuple(parameters['mobility']['repeats'])
    outputs = {}
    for index in range(len(lattice.names)):
        a_t = lattice.value(f'lattice_constant_{index}', 'angstrom')
        atoms = bicrystal_builder.build_sigma5_bicrystal(element.value, a_t, repeats)
        data = orm.SinglefileData(io.BytesIO(bicrystal_builder.lammps_data(atoms).encode()), filename='bicrystal.data')
        data.base.attributes.set('natoms', len(atoms))
        data.base.attributes.set('cell', [float(x) for x in atoms.cell.lengths()])
        outputs[f'bicrystal_{index}'] = data
        text = engine.orientation_file(a_t)
        outputs[f'orientation_{index}'] = orm.SinglefileData(
            io.BytesIO(text.encode()), filename=engine.ORIENTATION_FILENAME
        )
    return outputs


@calcfunction
def analyse_gb_mobility(
    parameters: orm.Dict, temperatures: orm.List, lattice: HandoffData, potential: orm.Data, natoms: orm.Int,
    **retrieved,
) -> HandoffData:  # fmt: skip
    """``gb_mobility``: M0 and Q of the boundary from the Arrhenius fit of the driven runs, with their covariance, and
    the per-temperature mobilities (``metadata.temperatures``).

    ``retrieved``: the retrieved folder of every run of :func:`run_plan`, by its label.
    """
    mobility = parameters['mobility']
    temps = temperatures.get_list()
    result = results_of_runs(mobility, temps, lattice, retrieved)
    fit, rows = result['fit'], result['rows']
    driven_ps = mobility['steps'] * mobility['timestep']
    size = f'{natoms.value} atoms ({"x".join(map(str, mobility["repeats"]))} oriented cells per grain)'
    pressures = ', '.join(f'{r["pressure"] / 1e6:.0f}' for r in rows)
    describe = (
        f'{METHOD}; u0 = {mobility["u0"]:g} eV/atom (P = {pressures} MPa); {size}; '
        f'{mobility["replicas"]} replica(s) of {driven_ps:g} ps per temperature at '
        f'{", ".join(f"{x:g}" for x in temps)} K'
    )
    attributes = {key: potential.base.attributes.get(key, None) for key in ('md5', 'title', 'pair_style', 'filename')}
    describe += f'; potential {attributes["filename"]} (md5 {attributes["md5"]})'
    weak = ' (fewer than three temperatures: no check of the fit)' if fit.dof == 0 else ''
    quantities = {
        'gb_mobility_prefactor': {
            'value': fit.prefactor,
            'unit': 'm**4/(J*s)',
            'std': fit.prefactor * fit.prefactor_ln_std,
            'note': f'computed: weighted Arrhenius fit of ln M against 1/kT{weak}; std first order from the std of '
            f'ln M0 ({fit.prefactor_ln_std:.3g}), correlated with Q (r = {fit.correlation:.3f}): use the covariance in '
            f'metadata; {describe}',
        },
        'gb_activation_energy': {
            'value': fit.activation_energy,
            'unit': 'eV',
            'std': fit.activation_energy_std,
            'note': f'computed: weighted Arrhenius fit of ln M against 1/kT{weak}; {describe}',
        },
    }
    checks = result['checks']
    metadata = {
        'method': METHOD,
        'u0_ev_per_atom': mobility['u0'],
        'natoms': natoms.value,
        'repeats': list(mobility['repeats']),
        'driven_ps': driven_ps,
        'equilibration_ps': mobility['equilibration_steps'] * mobility['timestep'],
        'replicas': mobility['replicas'],
        'potential': attributes,
        'temperatures': rows,
        'arrhenius': fit.as_dict(),
        'checks': checks,
        'runs': result['runs'],
    }
    return HandoffData(quantities, from_scale='md', to_scale='mesoscale', metadata=metadata)

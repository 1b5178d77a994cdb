"""Benchmarks of the periodic RVEs: CPU per element and load step, its growth, and (plasticity) the yield's convergence.

Run by hand, with ``nice`` on a shared machine:

* elastic RVE (about a minute of CPU): ``.venv/bin/python benchmarks/fem.py [--sizes 16,24,32]``;
* crystal-plasticity RVE (about 15 min of CPU at the defaults): ``.venv/bin/python benchmarks/fem.py --plasticity
  [--grain-counts 4,9,16] [--map-grains 9] [--elements-per-grain 4,9,16] [--load-steps 20,30,50,100] [--steps 30]``.

Every model runs in its own MOOSE process straight from the command line (no AiiDA), one after the other, so the CPU
figures compare.  CPU is the child's user + system time; the time-loop share is charged to the load steps by MOOSE's
PerfGraph (set-up, mesh and start-up apart).

**Elastic.**  Each size is a square periodic Voronoi map of ``size`` x ``size`` pixels with one grain per 64 pixels
(a fixed grain size of 8 pixels, so the grain count grows with the area), random orientations, Cu's cubic constants
(Simmons and Wang 1971), one element per pixel, one layer; the six load cases of :func:`build_rve_input` in one run.
Printed per size: elements, grains, total CPU, CPU per element and load step (the six unit strains), the PerfGraph
split (Jacobian, residual, linear solve and the rest), E_x of the RVE against the Reuss and Voigt bounds of the same
grains, and at the end the exponent ``a`` of ``CPU ~ elements^a`` (least squares over the sizes).

**Crystal plasticity** (``--plasticity``, issue 15).  The input of
:func:`~aiida_multiscale.engines.moose.plasticity.build_cp_rve_input` as ``RvePlasticityWorkChain`` builds it: Al,
cubic constants 107.3/60.9/28.3 GPa (Kamm and Alers, J. Appl. Phys. 35, 327 (1964), room temperature), the Al
assumptions of ``plasticity.yaml`` (Kalidindi flow rule and hardening; per-grain Hall-Petch ``tau_c = sigma_0 / M +
(k / M) / sqrt(d)`` with each grain's equivalent-circle diameter at 1 um pixels, rounded to ``tau_c_resolution``), its
default strain rate; uniaxial tension to 1 % strain.  Maps are square periodic Voronoi maps of 100 pixels a grain
(grains of about 11 um), random orientations; ``mesh_scale = sqrt(elements per grain / 100)``.  The 0.2 % offset
yield is read as ``cp_rve_analysis`` reads it (:func:`~aiida_multiscale.engines.moose.plasticity.flow_curve` and
``flow_curve_analysis``, true stress, E the secant of the first step).  Three series, a run shared between them run
once:

1. cost: maps of ``--grain-counts`` grains at the fewest ``--elements-per-grain``, ``--steps`` load steps: CPU per
   element and load step, the PerfGraph split, the yield and ``M`` (yield over the mean ``tau_c``), and the exponent
   of the time-loop CPU against the elements;
2. mesh: the ``--map-grains`` map at each ``--elements-per-grain``, ``--steps`` load steps: the yield and its ratio
   to the finest mesh's;
3. load steps: the same map at the fewest elements per grain, ``--load-steps`` steps to 1 %: the yield over the
   finest run's, also read with the finest run's E (``E fixed``: the curve's own error, without the secant's).

A step whose constitutive update fails is cut back and retried by MOOSE, so a run takes more time steps than it asks
for: the tables give the time steps tried and cut, and the CPU per element both per load step asked for (what a
budget of steps costs) and per accepted time step.
"""

from __future__ import annotations

import argparse
import functools
import os
import pathlib
import re
import resource
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phase_field import perf_split  # noqa: E402  (this folder: MOOSE's PerfGraph table, read once)

from aiida_multiscale.engines.moose import grains as G  # noqa: E402
from aiida_multiscale.engines.moose import plasticity as cp  # noqa: E402
from aiida_multiscale.engines.moose import rve  # noqa: E402
from aiida_multiscale.physics.elasticity import voigt_reuss_hill  # noqa: E402
from aiida_multiscale.physics.plasticity import hall_petch_slip_resistance  # noqa: E402
from aiida_multiscale.workflows.functions.plasticity import ASSUMPTION_UNITS  # noqa: E402
from aiida_multiscale.workflows.protocols.utils import load_protocol_file  # noqa: E402

MOOSE = str(ROOT / '.codes' / 'bin' / 'moose')
CU = (168.4, 121.4, 75.4)  # GPa, Simmons and Wang 1971
PIXELS_PER_GRAIN = 64


def run(size: int, seed: int, workdir: pathlib.Path) -> dict:
    n_grains = max(1, size * size // PIXELS_PER_GRAIN)
    labels = G.periodic_voronoi(G.random_seeds(n_grains, 1.0, 1.0, seed), 1.0, 1.0, size, size)
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    count = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    euler = np.column_stack(
        [rng.uniform(0, 360, count), np.degrees(np.arccos(rng.uniform(-1, 1, count))), rng.uniform(0, 360, count)]
    )
    model = rve.build_rve_input(labels, euler, *CU)
    folder = workdir / f'size{size}'
    folder.mkdir()
    text = model.input_text.replace('perf_graph = false', 'perf_graph = true')
    (folder / 'rve.i').write_text(text)
    for name, content in model.files.items():
        (folder / name).write_bytes(content)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([MOOSE, '-i', 'rve.i', '--color', 'off'], cwd=folder, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f'MOOSE failed at size {size}:\n{done.stdout[-1500:]}')
    data = np.genfromtxt(folder / f'{rve.FILE_BASE}.csv', delimiter=',', names=True)
    stiffness = rve.effective_stiffness({name: data[name] for name in data.dtype.names}, model.applied_strain)
    youngs, _ = rve.axial_moduli(stiffness)
    bounds = voigt_reuss_hill(*CU, euler, np.bincount(labels.ravel()) / labels.size)
    split = perf_split(done.stdout)
    steps_cpu = cpu * split['execute'] / split['main'] if {'execute', 'main'} <= set(split) else cpu
    return {
        'elements': size * size,
        'grains': count,
        'cpu': cpu,
        'steps_cpu': steps_cpu,
        'split': split,
        'youngs': youngs,
        'reuss': bounds['youngs_modulus_reuss'],
        'voigt': bounds['youngs_modulus_voigt'],
    }


# ------------------------------------------------------------------------------------------------ crystal plasticity
AL = (107.3e3, 60.9e3, 28.3e3)  # MPa, Kamm and Alers, J. Appl. Phys. 35, 327 (1964), room temperature
PIXEL = 1e-6  # m
CP_PIXELS_PER_GRAIN = 100  # a grain of 10 x 10 pixels on average: equivalent-circle diameter about 11 um
CP_STRAIN = 0.01


def al_assumptions() -> tuple[dict, dict]:
    """The Al assumptions of ``plasticity.yaml`` (values in :data:`ASSUMPTION_UNITS`) and its default parameters."""
    protocol = load_protocol_file('plasticity')['default_inputs']
    entries = protocol['assumptions']['Al']
    for name, unit in ASSUMPTION_UNITS.items():
        if entries[name]['unit'] != unit:
            raise ValueError(f'plasticity.yaml gives Al {name} in {entries[name]["unit"]}, this benchmark reads {unit}')
    return {name: float(entries[name]['value']) for name in ASSUMPTION_UNITS}, protocol['parameters']


@functools.cache
def cp_map(n_grains: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grain ids of a square periodic Voronoi map of ``n_grains`` at :data:`CP_PIXELS_PER_GRAIN`, Euler angles, tau_c.

    ``tau_c`` (MPa) as ``grain_slip_resistance`` computes it: Hall-Petch at the slip-system level, ``tau0 = sigma_0 /
    M``, ``k_tau = k / M``, each grain's own equivalent-circle diameter at :data:`PIXEL`, rounded to the protocol's
    ``tau_c_resolution``.
    """
    side = round(np.sqrt(n_grains * CP_PIXELS_PER_GRAIN))
    labels = G.periodic_voronoi(G.random_seeds(n_grains, 1.0, 1.0, seed), 1.0, 1.0, side, side)
    labels = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    count = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    euler = np.column_stack(
        [rng.uniform(0, 360, count), np.degrees(np.arccos(rng.uniform(-1, 1, count))), rng.uniform(0, 360, count)]
    )
    a, parameters = al_assumptions()
    taylor = a['taylor_factor_random']
    sizes = np.sqrt(4.0 * np.bincount(labels.ravel()) * PIXEL**2 / np.pi)
    tau_c = hall_petch_slip_resistance(
        a['friction_stress'] * 1e6 / taylor, a['hall_petch_coefficient'] * 1e6 / taylor, sizes
    )  # Pa
    resolution = parameters['tau_c_resolution'] * 1e6
    tau_c = np.maximum(np.round(tau_c / resolution), 1) * resolution / 1e6  # MPa
    return labels, euler, tau_c


def run_cp(n_grains: int, elements_per_grain: int, steps: int, seed: int, workdir: str) -> dict:
    """One crystal-plasticity RVE: tension to :data:`CP_STRAIN` in ``steps`` steps; CPU, PerfGraph split, yield."""
    labels, euler, tau_c = cp_map(n_grains, seed)
    a, parameters = al_assumptions()
    mesh_scale = float(np.sqrt(elements_per_grain / CP_PIXELS_PER_GRAIN))
    model = cp.build_cp_rve_input(
        labels,
        euler,
        *AL,
        tau_c,
        hardening={
            'h': a['hardening_modulus'],
            't_sat': a['saturation_strength'],
            'gss_a': a['hardening_exponent'],
            'r': a['latent_hardening_ratio'],
        },
        strain=CP_STRAIN,
        strain_rate=parameters['strain_rate'],
        steps=steps,
        mesh_scale=mesh_scale,
        layers=1,
        a0=a['reference_slip_rate'],
        xm=a['rate_sensitivity'],
    )
    folder = pathlib.Path(workdir) / f'cp_{n_grains}_{elements_per_grain}_{steps}'
    folder.mkdir()
    if 'perf_graph = false' not in model.input_text:
        raise RuntimeError('the crystal-plasticity input no longer has "perf_graph = false" to switch on')
    (folder / 'cp_rve.i').write_text(model.input_text.replace('perf_graph = false', 'perf_graph = true'))
    for name, content in model.files.items():
        (folder / name).write_bytes(content)
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([MOOSE, '-i', 'cp_rve.i', '--color', 'off'], cwd=folder, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    (folder / 'moose.log').write_text(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(
            f'MOOSE failed ({n_grains} grains, {elements_per_grain}/grain, {steps} steps):\n{done.stdout[-1500:]}'
        )
    data = np.genfromtxt(folder / f'{cp.FILE_BASE}.csv', delimiter=',', names=True)
    strain, stress = cp.flow_curve({name: data[name] for name in data.dtype.names})
    analysis = cp.flow_curve_analysis(strain, stress, flow_strain=CP_STRAIN)
    split = perf_split(done.stdout)
    elements = model.element_grains.size * model.layers
    present = np.unique(model.element_grains)
    return {
        'grains': int(labels.max()) + 1,
        'grains_in_mesh': present.size,
        'elements': elements,
        'steps': steps,
        # Time steps tried (step 0, the initial state, is not one) and those cut back (a failed solve).
        'solves': len(re.findall(r'^Time Step\s+[1-9]\d*,', done.stdout, flags=re.M)),
        'failed': len(re.findall(r'Solve Did NOT Converge', done.stdout)),
        'accepted': len(strain) - 1,
        'blocks': len(model.block_tau_c),
        'cpu': cpu,
        'steps_cpu': cpu * split['execute'] / split['main'] if {'execute', 'main'} <= set(split) else cpu,
        'split': split,
        'strain': strain,
        'stress': stress,
        'youngs': analysis['youngs_modulus'],
        'yield': analysis['yield_strength'],
        # The RVE's yield over its element-weighted mean tau_c (cp_rve_analysis's taylor_factor).
        'taylor': analysis['yield_strength'] / float(np.mean(tau_c[model.element_grains])),
        'load': load,
    }


def ms_per_element_step(r: dict, per: str = 'steps') -> float:
    """Time-loop CPU in ms per element and load step (``per='steps'``) or per accepted time step (``'accepted'``)."""
    return 1e3 * r['steps_cpu'] / r['elements'] / r[per]


def plasticity_main(args) -> None:
    grain_counts = [int(s) for s in args.grain_counts.split(',')]
    per_grain = [int(s) for s in args.elements_per_grain.split(',')]
    step_counts = [int(s) for s in args.load_steps.split(',')]
    base_steps, base_grains, coarse = args.steps, args.map_grains, min(per_grain)
    runs = {}  # a run shared by two series is run once

    def row(r: dict) -> str:
        """The columns every table shares: elements, time steps, CPU, CPU per element and step."""
        return (
            f'{r["elements"]:8d} {r["solves"]:6d} {r["failed"]:4d} {r["cpu"]:7.1f} '
            f'{ms_per_element_step(r):8.1f} {ms_per_element_step(r, "accepted"):8.1f}'
        )

    head = f'{"elements":>8s} {"tried":>6s} {"cut":>4s} {"CPU s":>7s} {"ms/el/st":>8s} {"ms/el/ac":>8s}'
    with tempfile.TemporaryDirectory() as tmp:

        def go(n, e, s):
            if (n, e, s) not in runs:
                runs[n, e, s] = run_cp(n, e, s, args.seed, tmp)
            return runs[n, e, s]

        print(
            f'Crystal plasticity, Al, uniaxial tension to {CP_STRAIN:g} at {al_assumptions()[1]["strain_rate"]:g}/s. '
            'tried/cut: time steps tried and cut back; ms/el/st: time-loop CPU per element and load step (the '
            'steps asked for), ms/el/ac: per element and accepted time step.\n',
            flush=True,
        )
        print(f'1. grain count at {coarse} elements per grain, {base_steps} load steps', flush=True)
        print(f'{"grains":>6s} {head} {"Jacobian":>8s} {"residual":>8s} {"yield MPa":>9s} {"M":>5s}', flush=True)
        series = []
        for n in grain_counts:
            r = go(n, coarse, base_steps)
            series.append(r)
            split, total = r['split'], r['split'].get('execute') or 1.0
            print(
                f'{r["grains"]:6d} {row(r)} {100 * split.get("jacobian", 0) / total:7.0f}% '
                f'{100 * split.get("residual", 0) / total:7.0f}% {r["yield"]:9.2f} {r["taylor"]:5.2f}',
                flush=True,
            )
        if len(series) >= 2:
            x = np.log([r['elements'] for r in series])
            exponent = np.polyfit(x, np.log([r['steps_cpu'] for r in series]), 1)[0]
            print(f'time-loop CPU ~ elements^{exponent:.2f} (grains grow with the elements)', flush=True)

        print(f'\n2. elements per grain, {base_grains}-grain map, {base_steps} load steps', flush=True)
        print(f'{"el/grain":>8s} {head} {"grains":>6s} {"E GPa":>6s} {"yield MPa":>9s} {"/finest":>7s}', flush=True)
        mesh = [go(base_grains, e, base_steps) for e in per_grain]
        for e, r in zip(per_grain, mesh):
            print(
                f'{e:8d} {row(r)} {r["grains_in_mesh"]:6d} {r["youngs"] / 1e3:6.2f} {r["yield"]:9.2f} '
                f'{r["yield"] / mesh[-1]["yield"]:7.4f}',
                flush=True,
            )

        print(f'\n3. load steps to {CP_STRAIN:g}, {base_grains}-grain map, {coarse} elements per grain', flush=True)
        print(f'{"steps":>6s} {head} {"E GPa":>6s} {"yield MPa":>9s} {"/finest":>7s} {"E fixed":>7s}', flush=True)
        time = [go(base_grains, coarse, s) for s in step_counts]
        finest = time[-1]
        for s, r in zip(step_counts, time):
            # The same curve read with the finest run's E: the error of the curve, without that of the secant modulus.
            fixed = cp.flow_curve_analysis(r['strain'], r['stress'], finest['youngs'], flow_strain=CP_STRAIN)
            print(
                f'{s:6d} {row(r)} {r["youngs"] / 1e3:6.2f} {r["yield"]:9.2f} {r["yield"] / finest["yield"]:7.4f} '
                f'{fixed["yield_strength"] / finest["yield"]:7.4f}',
                flush=True,
            )
    loads = [r['load'] for r in runs.values()]
    print(
        f'\n{len(runs)} MOOSE runs, {sum(r["cpu"] for r in runs.values()):.0f} s of CPU in all; load average (1 min) '
        f'at their starts {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores'
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='16,24,32', help='map edges in pixels (one element per pixel)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--plasticity', action='store_true', help='the crystal-plasticity benchmark instead')
    parser.add_argument('--grain-counts', default='4,9,16', help='plasticity: grain counts of the cost series')
    parser.add_argument('--map-grains', type=int, default=9, help='plasticity: grains of the convergence map')
    parser.add_argument(
        '--elements-per-grain', default='4,9,16', help='plasticity: mesh convergence; the least for the other series'
    )
    parser.add_argument('--load-steps', default='20,30,50,100', help=f'plasticity: steps to {CP_STRAIN:g} strain')
    parser.add_argument('--steps', type=int, default=30, help='plasticity: steps of the cost and mesh series')
    args = parser.parse_args()
    if args.plasticity:
        plasticity_main(args)
        return
    sizes = [int(s) for s in args.sizes.split(',')]
    steps = len(rve.LOAD_CASES)
    print(
        f'{"elements":>8s} {"grains":>6s} {"CPU s":>7s} {"ms/el/step":>10s} {"Jacobian":>8s} {"residual":>8s} '
        f'{"rest":>6s} {"E_x GPa":>8s} {"Reuss":>7s} {"Voigt":>7s}',
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            r = run(size, args.seed, pathlib.Path(tmp))
            results.append(r)
            split, total = r['split'], r['split'].get('execute') or 1.0
            rest = total - split.get('jacobian', 0.0) - split.get('residual', 0.0)
            print(
                f'{r["elements"]:8d} {r["grains"]:6d} {r["cpu"]:7.2f} '
                f'{1e3 * r["steps_cpu"] / r["elements"] / steps:10.3f} {100 * split.get("jacobian", 0) / total:7.0f}% '
                f'{100 * split.get("residual", 0) / total:7.0f}% {100 * rest / total:5.0f}% {r["youngs"]:8.2f} '
                f'{r["reuss"]:7.2f} {r["voigt"]:7.2f}',
                flush=True,
            )
    if len(results) >= 2:
        x = np.log([r['elements'] for r in results])
        exponent = np.polyfit(x, np.log([r['steps_cpu'] for r in results]), 1)[0]
        print(f'time-loop CPU ~ elements^{exponent:.2f} (grains grow with the elements: fixed grain size)')


if __name__ == '__main__':
    main()

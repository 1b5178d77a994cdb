"""Benchmark of the phase-field rung: CPU per time step and per DOF for 100 x 100, N = 8, with MOOSE's PerfGraph split.

Run by hand (it takes minutes): ``.venv/bin/python benchmarks/phase_field.py [--steps 3] [--anneal 2e-5]``.

Two measurements, every variant run in the same invocation (the machine is shared, so only ratios measured in one run
mean something; CPU seconds are counted, not wall time):

1. ``steps``: a few steps of constant ``dt`` from the same Voronoi start.  CPU per baseline step (an explicit variant
   takes several stable steps per baseline step), per DOF, Newton iterations, the PerfGraph split, and the largest
   relative difference of the order-parameter areas from the baseline.  ``baseline_half_dt`` (the baseline with
   ``dt / 2``) measures the baseline's own time-discretisation error: a variant whose difference is below it gives
   the same answer.
2. ``anneal``: a whole anneal with the builder's own time stepping (``dt_max = anneal / 20``, IterationAdaptiveDT),
   baseline vs the new default, comparing total CPU, grain count, mean grain area and the free-energy timeline.

Variants (all framework-only MOOSE objects, :func:`build_grain_growth_input`):

* ``baseline``: the first formulation (``formulation='pairwise'``): one ``DerivativeParsedMaterial`` per order
  parameter, implicit NEWTON with the full SMP Jacobian, ``nl_rel_tol = 1e-6``.
* ``split_newton``: ``formulation='split'`` (one shared parsed material for ``sum eta_j^2`` plus a one-variable
  material per order parameter, ``MatReaction`` kernels), same solver.
* ``split_pjfnk``: the same with PJFNK and a block-diagonal preconditioner (no off-diagonal Jacobian blocks).
* ``explicit``: ``split`` with forward Euler and a lumped mass (``ActuallyExplicitEuler``) at the stable step.
* ``new``: the builder's defaults (``formulation='split'``, ``time_integration='auto'``).

A suffix ``_half_dt`` halves the time step, ``_2threads`` runs MOOSE with ``--n-threads=2`` (CPU is what is compared,
so threads only count if they cost less CPU), e.g. ``--variants baseline,explicit,explicit_2threads``.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiida_multiscale.engines.moose import grains as G  # noqa: E402
from aiida_multiscale.engines.moose.exodus import read_exodus  # noqa: E402
from aiida_multiscale.engines.moose.phase_field import VoronoiStart, build_grain_growth_input  # noqa: E402

MOOSE = str(ROOT / '.codes' / 'bin' / 'moose')
N_GRID, N_OP, N_GRAINS = 100, 8, 24
SIZE = 5.0e-6  # m: 24 grains of about 1 um, interface 4 elements = 200 nm
PHYSICS = {'gb_energy': 0.36, 'mobility_prefactor': 2.5e-6, 'activation_energy': 0.23, 'temperature': 560.0}

VARIANTS = {
    'baseline': {'formulation': 'pairwise', 'time_integration': 'implicit', 'solver': 'newton'},
    'split_newton': {'formulation': 'split', 'time_integration': 'implicit', 'solver': 'newton'},
    'split_pjfnk': {'formulation': 'split', 'time_integration': 'implicit', 'solver': 'pjfnk'},
    'explicit': {'formulation': 'split', 'time_integration': 'explicit'},
    'new': {},
}


def start():
    seeds = G.random_seeds(N_GRAINS, SIZE, SIZE, 1)
    labels = G.periodic_voronoi(seeds, SIZE, SIZE, N_GRID, N_GRID)
    colours = G.colour_graph(range(N_GRAINS), G.adjacency(labels, 5), n_colours=N_OP)
    return VoronoiStart(seeds, [colours[k] for k in range(N_GRAINS)])


def build(variant: str, anneal_time: float, dt: float | None, n_frames: int):
    """Input text and files; with ``dt`` the implicit steps are constant (no growth) and the explicit ones <= dt."""
    options = VARIANTS[variant.removesuffix('_half_dt').removesuffix('_2threads')]
    built = build_grain_growth_input(
        **PHYSICS, anneal_time=anneal_time, domain_size=(SIZE, SIZE), grid=(N_GRID, N_GRID),
        interface_width=4 * SIZE / N_GRID, n_order_parameters=N_OP, start=start(), dt_initial=dt, dt_max=dt,
        n_frames=n_frames, perf_graph=True, **options,
    )  # fmt: skip
    text = built.text
    if dt is not None:
        text = text.replace('growth_factor = 1.5', 'growth_factor = 1.0')
    return text, built


def perf_split(log: str) -> dict[str, float]:
    """Total seconds of the solve, residual and Jacobian sections of MOOSE's PerfGraph table."""
    out = {}
    for key, label in (
        ('main', r'\w+App \(main\)'),
        ('execute', r'Transient::PicardSolve'),
        ('residual', r'FEProblem::computeResidualInternal'),
        ('jacobian', r'FEProblem::computeJacobianInternal'),
    ):
        rows = [line for line in log.splitlines() if re.search(rf'\|\s+{label}\s+\|', line)]
        if rows:
            cells = [c.strip() for c in rows[0].split('|')]
            out[key] = float(cells[7])  # Total(s)
    out.setdefault('residual', 0.0)
    out.setdefault('jacobian', 0.0)
    if 'execute' in out:
        out['linear_solve_and_rest'] = out['execute'] - out['residual'] - out['jacobian']
    return out


def run(variant: str, anneal_time: float, dt: float | None, n_frames: int, workdir: pathlib.Path) -> dict:
    step = dt / 2 if variant.endswith('_half_dt') else dt
    text, built = build(variant, anneal_time, step, n_frames)
    folder = workdir / variant
    folder.mkdir()
    (folder / 'run.i').write_text(text)
    for name, content in built.files.items():
        (folder / name).write_text(content)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = time.perf_counter()
    args = [MOOSE, '-i', 'run.i', '--color', 'off'] + (['--n-threads=2'] if variant.endswith('_2threads') else [])
    done = subprocess.run(args, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        return {'variant': variant, 'error': done.stdout[-1500:]}
    series = np.genfromtxt(folder / 'phase_field.csv', delimiter=',', names=True)
    split = perf_split(done.stdout)
    # Set-up (mesh, the Voronoi initial condition) is not time stepping: charge the steps the time loop's share of the
    # CPU, by its share of MOOSE's own total time in the PerfGraph.
    solve_cpu = cpu * split['execute'] / split['main'] if {'execute', 'main'} <= set(split) else cpu
    data = read_exodus(str(folder / 'phase_field.e'))
    etas = G.order_parameters(data, N_OP)
    energies = [G.free_energy(e, data['dx'], data['dy'], built.constants['mu'], built.constants['kappa']) for e in etas]
    state = G.detect_grains(etas[-1], min_nodes=4)
    return {
        'variant': variant, 'cpu': solve_cpu, 'wall': wall, 'steps': len(series) - 1,
        'nonlinear': float(np.sum(series['nonlinear_its'])),
        'areas': np.array([series[f'area_eta{k}'][-1] for k in range(N_OP)]), 'split': split,
        'energies': np.array(energies), 'grains': len(state.ops),
        'mean_area': (SIZE * 1e6) ** 2 / max(len(state.ops), 1),
    }  # fmt: skip


def steps_table(n_steps: int, dt: float, names: list[str]) -> None:
    dofs = N_OP * (N_GRID + 1) ** 2
    print(f'\n1. {n_steps} steps of dt = {dt:g} s (CPU per baseline step), {dofs} DOFs', flush=True)
    print(
        f'{"variant":18s} {"CPU s/step":>10s} {"us/step/DOF":>11s} {"steps":>5s} {"NL/step":>7s} {"Jacobian":>9s} '
        f'{"residual":>9s} {"lin.+rest":>9s} {"speed-up":>8s} {"max dA/A":>9s}',
        flush=True,
    )
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in names:
            r = run(variant, n_steps * dt, dt, 1, pathlib.Path(tmp))
            if 'error' in r:
                print(f'{variant:18s} FAILED: {r["error"][-300:]}', flush=True)
                continue
            base = base or r
            per_step = r['cpu'] / n_steps
            split, total = r['split'], r['split'].get('execute') or 1.0
            diff = float(np.max(np.abs(r['areas'] - base['areas']) / np.maximum(base['areas'], 1e-12)))
            print(
                f'{variant:18s} {per_step:10.3f} {per_step / dofs * 1e6:11.2f} {r["steps"]:5d} '
                f'{r["nonlinear"] / r["steps"]:7.2f} {100 * split["jacobian"] / total:8.0f}% '
                f'{100 * split["residual"] / total:8.0f}% {100 * split["linear_solve_and_rest"] / total:8.0f}% '
                f'{base["cpu"] / r["cpu"]:8.2f} {diff:9.1e}',
                flush=True,
            )


def anneal_table(anneal_time: float, names: list[str]) -> None:
    print(f'\n2. anneal of {anneal_time:g} s with the builder time stepping (dt_max = anneal / 20)', flush=True)
    print(
        f'{"variant":18s} {"CPU s":>8s} {"steps":>5s} {"CPU s/step":>10s} {"speed-up":>8s} {"grains":>6s} '
        f'{"mean area um2":>13s} {"F(t)/F_base(t) - 1, per frame":>30s}',
        flush=True,
    )
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in names:
            r = run(variant, anneal_time, None, 4, pathlib.Path(tmp))
            if 'error' in r:
                print(f'{variant:18s} FAILED: {r["error"][-300:]}', flush=True)
                continue
            base = base or r
            energy = ' '.join(f'{v:+.1e}' for v in r['energies'] / base['energies'] - 1)
            print(
                f'{variant:18s} {r["cpu"]:8.1f} {r["steps"]:5d} {r["cpu"] / r["steps"]:10.3f} '
                f'{base["cpu"] / r["cpu"]:8.2f} {r["grains"]:6d} {r["mean_area"]:13.4f} {energy:>30s}',
                flush=True,
            )
            print(f'{"":18s} free energy (eV/nm): ' + ' '.join(f'{v:.5g}' for v in r['energies']), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3, help='time steps of part 1 (constant dt); 0 skips part 1')
    parser.add_argument('--dt', type=float, default=2.0e-7, help='time step of part 1, s')
    parser.add_argument(
        '--variants', default='baseline,baseline_half_dt,split_newton,split_pjfnk,explicit', help='variants of part 1'
    )
    parser.add_argument('--anneal', type=float, default=2.0e-5, help='anneal time of part 2, s; 0 skips part 2')
    args = parser.parse_args()
    print(f'100 x 100 elements, N = {N_OP} order parameters, {N_GRAINS} grains in {SIZE * 1e6:g} um', flush=True)
    if args.steps:
        steps_table(args.steps, args.dt, args.variants.split(','))
    if args.anneal:
        anneal_table(args.anneal, ['baseline', 'new'])


if __name__ == '__main__':
    main()

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

``--scaling`` (instead of the two parts above): the reduced-unit runs of the work chain
(:func:`build_reduced_grain_growth_input`, the start of ``initial_colouring``: ``grains`` Voronoi grains in a periodic
square of side ``sqrt(grains pi) / 2``, 4-element interfaces, ``--elements-per-d0`` elements across the starting grain,
``dt_max`` 0.05, the protocol's ``dt_max_fraction x cycle_time`` when measured; the implicit step stays below it):

3. ``scaling``: every variant of :data:`SCALING_VARIANTS` at each of ``--grains`` (same d0 in elements) to reduced time
   ``--tau``: CPU (all of MOOSE's) per grain and per reduced time, and the exponent ``a`` of CPU ~ grains^a.
4. ``trajectory``: the smallest grain count to ``--tau-check`` with frames every 0.1: grain count and mean grain area
   (from the Exodus frames) and the order-parameter areas against ``reference`` (forward Euler at half its stable
   step, the tightest in time; the explicit run is the one closest to the Richardson extrapolate of the implicit runs,
   ``tests/test_phase_field_physics.py``).

``.venv/bin/python benchmarks/phase_field.py --scaling [--grains 25,60,120] [--tau 0.1] [--tau-check 0.8]``
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
from aiida_multiscale.engines.moose.phase_field import (  # noqa: E402
    VoronoiStart,
    build_grain_growth_input,
    build_reduced_grain_growth_input,
    explicit_stable_dt,
    reduced_model_constants,
)

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


#: Reduced-unit variants of part 3 and 4 (keyword arguments of :func:`build_reduced_grain_growth_input`; ``threads``
#: and ``dt_fraction`` of the explicit stable step are the benchmark's own).
SCALING_VARIANTS = {
    # What the work chain renders today: implicit NEWTON, IterationAdaptiveDT with optimal_iterations 5.
    'implicit': {'time_integration': 'implicit'},
    # The step may grow while Newton takes fewer than 8 iterations, to a looser tolerance.
    'implicit_grow': {
        'time_integration': 'implicit',
        'optimal_iterations': 10,
        'iteration_window': 2,
        'nl_rel_tol': 1e-4,
    },
    'explicit': {'time_integration': 'explicit'},
    'explicit_2threads': {'time_integration': 'explicit', 'threads': 2},
    # Forward Euler on a mesh twice coarser away from the interfaces (one level of refinement where sum eta^2 < 0.95).
    'explicit_adaptive': {'time_integration': 'explicit', 'adaptivity_levels': 1},
    # The tightest in time: forward Euler at half its stable step.
    'reference': {'time_integration': 'explicit', 'dt_fraction': 0.5},
}
#: Largest implicit step: dt_max_fraction (0.1) x cycle_time (0.5 when measured, now 0.25; dt stays below both).
REDUCED_DT_MAX = 0.05


def reduced_case(grains: int, elements_per_d0: float, n_op: int, seed: int = 1):
    """Grid, domain side, interface width and start of the work chain's reduced run with ``grains`` grains."""
    from aiida_multiscale.workflows.functions.phase_field import initial_colouring

    size = (grains * np.pi) ** 0.5 / 2
    n = 2 * int(round(elements_per_d0 * size / 2))  # even, for one level of adaptivity
    parameters = {'grid': n, 'grains': grains, 'interface_elements': 4, 'seed': seed}
    seeds, _labels, colours = initial_colouring(parameters, n_op)
    return n, size, 4 * size / n, VoronoiStart(seeds, [colours[k] for k in range(grains)])


def run_reduced(variant: str, grains: int, tau: float, n_frames: int, args, workdir: pathlib.Path) -> dict:
    options = dict(SCALING_VARIANTS[variant])
    threads = options.pop('threads', 1)
    fraction = options.pop('dt_fraction', None)
    n, size, width, start_ = reduced_case(grains, args.elements_per_d0, args.ops)
    dt_max = REDUCED_DT_MAX
    if fraction is not None:
        dt_max = fraction * explicit_stable_dt(reduced_model_constants(width), (size / n, size / n), 1.0, 1.0)
    built = build_reduced_grain_growth_input(
        anneal_time=tau, domain_size=(size, size), grid=(n, n), interface_width=width, n_order_parameters=args.ops,
        start=start_, dt_max=dt_max, n_frames=n_frames, perf_graph=True, **options,
    )  # fmt: skip
    folder = workdir / f'{variant}_{grains}'
    folder.mkdir()
    (folder / 'run.i').write_text(built.text)
    for name, content in built.files.items():
        (folder / name).write_text(content)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = time.perf_counter()
    command = [MOOSE, '-i', 'run.i', '--color', 'off'] + ([f'--n-threads={threads}'] if threads > 1 else [])
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
    wall = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        return {'variant': variant, 'error': done.stdout[-1500:] + done.stderr[-500:]}
    split = perf_split(done.stdout)
    solve_cpu = cpu * split['execute'] / split['main'] if {'execute', 'main'} <= set(split) else cpu
    series = np.genfromtxt(folder / 'phase_field.csv', delimiter=',', names=True)
    result = {
        'variant': variant, 'grains': grains, 'n': n, 'cpu': cpu, 'solve_cpu': solve_cpu, 'wall': wall,
        'steps': len(series) - 1, 'nonlinear': float(np.sum(series['nonlinear_its'])), 'time': series['time'],
        'areas': np.stack([series[f'area_eta{k}'] for k in range(args.ops)], axis=1) / size**2,
    }  # fmt: skip
    if not options.get('adaptivity_levels'):
        data = read_exodus(str(folder / 'phase_field.e'))
        counts = [len(G.detect_grains(e, min_nodes=4).ops) for e in G.order_parameters(data, args.ops)]
        result['frame_times'] = data['times']
        result['counts'] = np.array(counts)
    return result


def scaling_table(args) -> None:
    grain_counts = [int(g) for g in args.grains.split(',')]
    names = args.scaling_variants.split(',')
    print(
        f'\n3. reduced runs to tau = {args.tau:g} (d0 = {args.elements_per_d0:g} elements, {args.ops} ops, interface '
        f'4 elements, implicit dt_max {REDUCED_DT_MAX:g}); CPU: rusage of MOOSE, loop: its PicardSolve share',
        flush=True,
    )
    print(
        f'{"variant":18s} {"grains":>6s} {"grid":>5s} {"steps":>5s} {"NL":>5s} {"CPU s":>7s} {"loop s":>7s} '
        f'{"wall s":>7s} {"CPU s/(grain tau)":>18s} {"vs implicit":>11s}',
        flush=True,
    )
    cost: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for grains in grain_counts:
            for variant in names:
                r = run_reduced(variant, grains, args.tau, 1, args, pathlib.Path(tmp))
                if 'error' in r:
                    print(f'{variant:18s} {grains:6d} FAILED: {r["error"][-300:]}', flush=True)
                    continue
                # All the CPU (set-up included: what a cycle costs; mesh adaptation is outside PicardSolve's share)
                per = r['cpu'] / (grains * args.tau)
                cost.setdefault(variant, {})[grains] = per
                ratio = cost.get('implicit', {}).get(grains, float('nan')) / per
                print(
                    f'{variant:18s} {grains:6d} {r["n"]:5d} {r["steps"]:5d} {r["nonlinear"]:5.0f} {r["cpu"]:7.1f} '
                    f'{r["solve_cpu"]:7.1f} {r["wall"]:7.1f} {per:18.3f} {ratio:11.2f}',
                    flush=True,
                )
    print('\nexponent a of CPU ~ grains^a (fit over the grain counts):', flush=True)
    for variant, values in cost.items():
        if len(values) >= 2:
            g = np.array(sorted(values))
            c = np.array([values[k] * k for k in g])
            a = np.polyfit(np.log(g), np.log(c), 1)[0]
            print(f'{variant:18s} a = {a:.2f}', flush=True)


def trajectory_table(args) -> None:
    grains = min(int(g) for g in args.grains.split(','))
    names = ['reference'] + [v for v in args.scaling_variants.split(',') if v != 'reference']
    n_frames = max(1, int(round(args.tau_check / 0.1)))
    print(
        f'\n4. {grains} grains to tau = {args.tau_check:g}, {n_frames} frames: grain count and mean grain area '
        f'(d0^2) per frame, max |A_eta - A_eta,ref| / domain over the CSV rows at the frame times',
        flush=True,
    )
    ref = None
    with tempfile.TemporaryDirectory() as tmp:
        for variant in names:
            r = run_reduced(variant, grains, args.tau_check, n_frames, args, pathlib.Path(tmp))
            if 'error' in r:
                print(f'{variant:18s} FAILED: {r["error"][-300:]}', flush=True)
                continue
            ref = ref or r
            size2 = np.pi * grains / 4
            frames = ref['frame_times']
            mine = np.stack([np.interp(frames, r['time'], r['areas'][:, k]) for k in range(args.ops)], axis=1)
            theirs = np.stack([np.interp(frames, ref['time'], ref['areas'][:, k]) for k in range(args.ops)], axis=1)
            area_diff = float(np.max(np.abs(mine - theirs)))
            line = f'{variant:18s} CPU {r["cpu"]:7.1f} s, steps {r["steps"]:5d}, max dA_eta {area_diff:.1e}'
            if 'counts' in r:
                counts = ' '.join(f'{c:3d}' for c in r['counts'])
                means = r['counts'].astype(float)
                deviation = np.max(np.abs(ref['counts'] / r['counts'] - 1))
                line += f', mean-area max dev {deviation:+.1%}\n{"":18s} grains {counts}'
                line += f'\n{"":18s} mean area ' + ' '.join(f'{size2 / c:.2f}' for c in means)
            print(line, flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3, help='time steps of part 1 (constant dt); 0 skips part 1')
    parser.add_argument('--dt', type=float, default=2.0e-7, help='time step of part 1, s')
    parser.add_argument(
        '--variants', default='baseline,baseline_half_dt,split_newton,split_pjfnk,explicit', help='variants of part 1'
    )
    parser.add_argument('--anneal', type=float, default=2.0e-5, help='anneal time of part 2, s; 0 skips part 2')
    parser.add_argument('--scaling', action='store_true', help='parts 3 and 4 (reduced units) instead of 1 and 2')
    parser.add_argument('--grains', default='25,60,120', help='grain counts of part 3')
    parser.add_argument('--tau', type=float, default=0.1, help='reduced time of part 3')
    parser.add_argument('--tau-check', type=float, default=0.8, help='reduced time of part 4; 0 skips it')
    parser.add_argument('--elements-per-d0', type=float, default=12.25, help='elements across the starting grain')
    parser.add_argument('--ops', type=int, default=8, help='order parameters of parts 3 and 4')
    parser.add_argument(
        '--scaling-variants',
        default='implicit,implicit_grow,explicit,explicit_2threads,explicit_adaptive',
        help=f'variants of parts 3 and 4, of {sorted(SCALING_VARIANTS)}',
    )
    args = parser.parse_args()
    if args.scaling:
        if args.tau:
            scaling_table(args)
        if args.tau_check:
            trajectory_table(args)
        return
    print(f'100 x 100 elements, N = {N_OP} order parameters, {N_GRAINS} grains in {SIZE * 1e6:g} um', flush=True)
    if args.steps:
        steps_table(args.steps, args.dt, args.variants.split(','))
    if args.anneal:
        anneal_table(args.anneal, ['baseline', 'new'])


if __name__ == '__main__':
    main()

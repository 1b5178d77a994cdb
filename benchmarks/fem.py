"""Benchmark of the periodic elastic RVE: CPU per element and per load step at three sizes, and the growth exponent.

Run by hand (about a minute of CPU at the default sizes): ``.venv/bin/python benchmarks/fem.py [--sizes 16,24,32]``.

Each size is a square periodic Voronoi map of ``size`` x ``size`` pixels with one grain per 64 pixels (a fixed grain
size of 8 pixels, so the grain count grows with the area), random orientations, Cu's cubic constants (Simmons and Wang
1971), one element per pixel, one layer.  The six load cases of :func:`build_rve_input` run in one MOOSE process
straight from the command line (no AiiDA), one after the other, so the CPU figures compare.  CPU is the child's user +
system time; the time-loop share is charged to the load steps by MOOSE's PerfGraph (set-up, mesh and start-up apart).

Printed per size: elements, grains, total CPU, CPU per element and load step (the six unit strains), the PerfGraph
split (Jacobian, residual, linear solve and the rest), E_x of the RVE against the Reuss and Voigt bounds of the same
grains, and at the end the exponent ``a`` of ``CPU ~ elements^a`` (least squares over the sizes).  Crystal plasticity
(issue 15, items 2 and 3) is not in this benchmark yet.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from phase_field import perf_split  # noqa: E402  (this folder: MOOSE's PerfGraph table, read once)

from aiida_multiscale.engines.moose import grains as G  # noqa: E402
from aiida_multiscale.engines.moose import rve  # noqa: E402
from aiida_multiscale.physics.elasticity import voigt_reuss_hill  # noqa: E402

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='16,24,32', help='map edges in pixels (one element per pixel)')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()
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

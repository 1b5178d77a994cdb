"""Benchmark of the MD rung: MdWorkChain on the shipped Al potentials with a full-size protocol, timed.

Run by hand on a set-up profile (``aiida-multiscale setup`` done, code ``lmp@localhost``)::

    .venv/bin/python benchmarks/md.py [--protocol moderate] [--potential Al_mm.eam.fs Al_zhou.eam.alloy]

It runs in this process (no daemon needed) and prints one line per potential: a0, Cij, GB energy with its std, the
size difference, the number of configurations and the wall time, next to reference values computed with the same
potential files: a0 from ase's EAM calculator, the Sigma5(310)[001] energy from a LAMMPS rigid-shift scan converged in
size at about 1800 atoms.

The mobility stage (``--no-mobility`` leaves it out) adds ``mobility``: M(T) per temperature, M0, Q with their stds,
the linearity and reversal checks, the stage's wall time and its CPU time per temperature and in total (the LAMMPS
``Loop time`` of every a(T) and driven run, times its MPI ranks).  Its driven runs go side by side only when a daemon
runs them (``aiida-multiscale launch md``); in this process they run one after another, so the stage's wall time here is
its CPU time, not what a user waits.
"""

from __future__ import annotations

import argparse
import json
import re
import time

REFERENCES = {
    'Al_mm.eam.fs': {'a0_md': 4.0453, 'gb_energy': 0.490},
    'Al_zhou.eam.alloy': {'a0_md': 4.0817, 'gb_energy': 0.357},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--protocol', default='moderate', choices=['fast', 'moderate', 'precise'])
    parser.add_argument('--potential', nargs='+', default=list(REFERENCES))
    parser.add_argument('--code', default='lmp@localhost')
    parser.add_argument('--no-mobility', action='store_true', help='leave the mobility stage out')
    args = parser.parse_args()

    from aiida import load_profile, orm
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    load_profile()
    from aiida_multiscale.engines.lammps.potentials import get_or_create_potential, potentials_folder
    from aiida_multiscale.workflows.md import MdWorkChain

    rows = []
    for name in args.potential:
        potential = get_or_create_potential(potentials_folder() / name, 'Al')
        if not potential.is_stored:
            potential.store()
        overrides = {'parameters': {'mobility': {'compute': False}}} if args.no_mobility else None
        builder = MdWorkChain.get_builder_from_protocol(orm.load_code(args.code), 'Al', potential,
                                                        protocol=args.protocol, overrides=overrides)  # fmt: skip
        start = time.perf_counter()
        # Runs in this interpreter: caching (which `make profile` enables) is switched off here, or a repeated
        # benchmark would time copies.
        with disable_caching():
            _, node = run_get_node(builder)
        elapsed = time.perf_counter() - start
        row = {'potential': name, 'pk': node.pk, 'exit_status': node.exit_status, 'wall_time_s': round(elapsed, 1)}
        if 'md_properties' in node.outputs:
            md = node.outputs.md_properties
            row.update({key: q['value'] for key, q in md.summary().items()})
            row['gb_energy_std'] = md['gb_energy'].std
            row['gb'] = {
                k: md.metadata['gb'][k]
                for k in (
                    'minimum_small',
                    'minimum_large',
                    'reached_by',
                    'n_configurations',
                    'n_rejected',
                    'size_check_repeats',
                )
            }
        if 'gb_mobility' in node.outputs:
            row['mobility'] = mobility_summary(node)
        row['reference'] = REFERENCES.get(name)
        rows.append(row)
        print(json.dumps(row), flush=True)


def loop_cpu_seconds(calc) -> float:
    """CPU seconds of one LAMMPS run: every ``Loop time of T on N procs`` times N and the ``P% CPU use`` LAMMPS prints
    after it (runs side by side on fewer cores than runs share them: their loop time is wall time, not CPU)."""
    text = calc.outputs.retrieved.base.repository.get_object_content('lammps.out')
    loops = re.findall(r'Loop time of (\S+) on (\d+) procs', text)
    usage = re.findall(r'^\s*(\S+)% CPU use', text, flags=re.MULTILINE)
    if len(loops) != len(usage):
        raise ValueError(f'{calc.label}: {len(loops)} loop times but {len(usage)} CPU-use lines in lammps.out')
    return sum(float(t) * int(n) * float(p) / 100 for (t, n), p in zip(loops, usage))


def mobility_summary(node) -> dict:
    """The mobility stage of a finished MdWorkChain: results, checks, wall time and CPU per temperature."""
    handoff = node.outputs.gb_mobility
    runs = {run['label']: run['temperature'] for run in handoff.metadata['runs']}
    temperatures = [row['temperature'] for row in handoff.metadata['temperatures']]
    calcs = [
        c for c in node.called_descendants
        if c.process_label == 'LammpsRawCalculation' and c.label.startswith(('lattice_', 'mobility_'))
        and c.is_finished_ok  # a run killed at its walltime and resubmitted has no complete lammps.out
    ]  # fmt: skip
    cpu = {f'{t:g}': 0.0 for t in temperatures}
    for calc in calcs:
        temperature = runs.get(calc.label)
        if temperature is None:  # lattice_<i>
            temperature = temperatures[int(calc.label.split('_')[1])]
        cpu[f'{temperature:g}'] += loop_cpu_seconds(calc)
    return {
        'rows': [
            {key: row[key] for key in ('temperature', 'mobility', 'ln_std', 'velocity', 'pressure', 'replicas')}
            for row in handoff.metadata['temperatures']
        ],
        'prefactor': handoff.value('gb_mobility_prefactor'),
        'prefactor_ln_std': handoff['gb_mobility_prefactor'].std / handoff.value('gb_mobility_prefactor'),
        'activation_energy': handoff.value('gb_activation_energy'),
        'activation_energy_std': handoff['gb_activation_energy'].std,
        'checks': {name: {'z': c['z'], 'verdict': c['verdict']} for name, c in handoff.metadata['checks'].items()},
        'natoms': handoff.metadata['natoms'],
        'stage_wall_s': round((max(c.mtime for c in calcs) - min(c.ctime for c in calcs)).total_seconds(), 1),
        'cpu_s_per_temperature': {key: round(value, 1) for key, value in cpu.items()},
        'cpu_s_total': round(sum(cpu.values()), 1),
    }


if __name__ == '__main__':
    main()

"""Benchmark of the MD rung: MdWorkChain on the shipped Al potentials with a full-size protocol, timed.

Run by hand on a set-up profile (``aiida-multiscale setup`` done, code ``lmp@localhost``)::

    .venv/bin/python benchmarks/md.py [--protocol moderate] [--potential Al_mm.eam.fs Al_zhou.eam.alloy]

It runs in this process (no daemon needed) and prints one line per potential: a0, Cij, GB energy with its std, the
size difference, the number of configurations and the wall time, next to reference values computed with the same
potential files: a0 from ase's EAM calculator, the Sigma5(310)[001] energy from a LAMMPS rigid-shift scan converged in
size at about 1800 atoms.
"""

from __future__ import annotations

import argparse
import json
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
        builder = MdWorkChain.get_builder_from_protocol(orm.load_code(args.code), 'Al', potential,
                                                        protocol=args.protocol)  # fmt: skip
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
        row['reference'] = REFERENCES.get(name)
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()

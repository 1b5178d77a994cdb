"""Wall time of the phase-field rung's protocols end to end: the PhaseFieldWorkChain itself, run in this process.

Run by hand (not a test; `moderate` takes about 15 minutes on 2 cores), on the default profile::

    .venv/bin/python benchmarks/phase_field_protocols.py [--protocol fast moderate] [--threads 1] [--repeat 1]

Each run uses the protocol's stand-alone interface (Al, the default anneal of ``phase_field.yaml``: far beyond any
run, so every realisation runs until fewer than ``min_grains`` grains are left) and prints one row per run: wall
time, MOOSE runs, cycles, grains handed on and simulated reduced time per realisation.  With ``--repeat 2`` it also
says whether the second run gave the same grain sizes and map bit for bit (``threads`` > 1 sums the residual over
threads).  Caching is disabled for the runs, so every MOOSE run is real.
"""

from __future__ import annotations

import argparse
import time


def run_once(code, protocol: str, threads: int):
    from aiida.engine import run_get_node
    from aiida.manage.caching import disable_caching

    from aiida_multiscale.data.handoff import HandoffData
    from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain
    from aiida_multiscale.workflows.protocols.anneal import standalone_interface

    interface = HandoffData(standalone_interface(), producer='benchmark', from_scale='user', to_scale='mesoscale')
    builder = PhaseFieldWorkChain.get_builder_from_protocol(
        code, interface=interface, protocol=protocol, overrides={'parameters': {'threads': threads}}
    )
    start = time.monotonic()
    with disable_caching():
        results, node = run_get_node(builder)
    return results, node, time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--protocol', nargs='+', default=['fast', 'moderate'])
    parser.add_argument('--threads', type=int, default=1, help='MOOSE threads per run (parameters.threads)')
    parser.add_argument('--repeat', type=int, default=1, help='runs per protocol')
    parser.add_argument('--code', default='moose@localhost')
    parser.add_argument('--profile', default=None, help='AiiDA profile [default: the default profile]')
    args = parser.parse_args(argv)

    import numpy as np
    from aiida import load_profile, orm

    load_profile(args.profile)
    code = orm.load_code(args.code)
    print('| protocol | threads | exit | wall (s) | MOOSE runs | grains handed on | simulated reduced time |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    for protocol in args.protocol:
        previous = None
        for _ in range(args.repeat):
            results, node, wall = run_once(code, protocol, args.threads)
            calcs = [c for c in node.called_descendants if c.process_label == 'MooseCalculation']
            rows = results['grain_statistics'].metadata['realisations'] if node.is_finished_ok else []
            grains = ', '.join(str(row['grain_count']) for row in rows)
            times = ', '.join(format(row['simulated_reduced_time'], '.3g') for row in rows)
            print(
                f'| {protocol} | {args.threads} | {node.exit_status} | {wall:.0f} | {len(calcs)} | {grains} '
                f'| {times} |',
                flush=True,
            )
            if node.is_finished_ok:
                current = (results['grain_history'].get_array('area_diameter'), results['microstructure'].grain_ids)
                if previous is not None:
                    same = np.array_equal(previous[0], current[0]) and np.array_equal(previous[1], current[1])
                    print(f'  rerun of {protocol}: grain sizes and map bit for bit equal: {same}')
                previous = current
    return 0


if __name__ == '__main__':
    raise SystemExit(main())

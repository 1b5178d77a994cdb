"""Benchmark of the DFT rung: pw.x CPU time of a `moderate` Al DftWorkChain, wasted SCFs and AiiDA overhead.

Run by hand (not a test), on the default profile with the daemon running::

    verdi daemon start 2      # if not running
    .venv/bin/python benchmarks/dft.py [--element Al] [--protocol moderate] [--pk PK]

It submits one DftWorkChain (or analyses a finished one with ``--pk``) and prints:

* the total pw.x CPU time over all PwCalculations it ran (restarts, re-centred EOS rounds included);
* the CPU time of the SCFs whose results enter the fits (the ones that were needed), and the difference (waste);
* the wall time of the work chain against the wall time pw.x needed on the critical path (the longest pw.x run of
  each parallel stage, summed over the stages): their ratio is the AiiDA overhead (submission, upload, polling,
  retrieval, parsing, calcfunctions) at this parallelism.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time

TIMING = re.compile(
    r'PWSCF\s*:\s*(?:(\d+)h\s*)?(?:([\d.]+)m\s*)?([\d.]+)s CPU\s+(?:(\d+)h\s*)?(?:([\d.]+)m\s*)?([\d.]+)s WALL'
)


def _seconds(hours, minutes, seconds) -> float:
    return float(hours or 0) * 3600 + float(minutes or 0) * 60 + float(seconds or 0)


def pw_times(calculation) -> tuple[float, float]:
    """(CPU, wall) seconds of one PwCalculation, from the timing line at the end of pw.x's output."""
    try:
        text = calculation.outputs.retrieved.base.repository.get_object_content('aiida.out')
    except Exception:  # no output retrieved: the run cost nothing we can measure
        return 0.0, 0.0
    matches = list(TIMING.finditer(text))
    if not matches:
        return 0.0, 0.0
    groups = matches[-1].groups()
    return _seconds(*groups[:3]), _seconds(*groups[3:])


def analyse(node) -> dict:
    """Timing summary of a finished DftWorkChain."""
    # The SCFs that were needed are those whose structure enters a fit calcfunction (eos or elastic).
    fit_inputs = set()
    for label in ('eos', 'elastic'):
        if label in node.outputs:
            fit_inputs |= {n.uuid for n in node.outputs[label].creator.base.links.get_incoming().all_nodes()}
    stages: dict[str, list] = {'eos': [], 'elastic': []}
    total_cpu = needed_cpu = 0.0
    calculations = scfs = 0
    for link in node.base.links.get_outgoing().all():
        child = link.node
        if getattr(child, 'process_label', None) not in ('PwBaseWorkChain', 'MultiscalePwBaseWorkChain'):
            continue
        scfs += 1
        stage = 'eos' if link.link_label.startswith('eos') else 'elastic'
        runs = sorted((c for c in child.called if c.process_label == 'PwCalculation'), key=lambda c: c.ctime)
        for calculation in runs:
            cpu, wall = pw_times(calculation)
            calculations += 1
            total_cpu += cpu
            stages[stage].append((calculation.ctime, wall))
        if runs and child.is_finished_ok and child.inputs.pw.structure.uuid in fit_inputs:
            needed_cpu += pw_times(runs[-1])[0]  # restarts before the last run count as waste
    # Critical path: a stage's SCFs are submitted together, and a new round starts after the slowest of the last.
    critical = 0.0
    for runs in stages.values():
        runs.sort()
        rounds: list[list[float]] = []
        previous = None
        for ctime, wall in runs:
            if previous is None or (ctime - previous).total_seconds() > 20:
                rounds.append([])
            rounds[-1].append(wall)
            previous = ctime
        critical += sum(max(r) for r in rounds if r)
    chain_wall = (node.mtime - node.ctime).total_seconds()
    return {
        'pk': node.pk,
        'exit_status': node.exit_status,
        'scf_workchains': scfs,
        'pw_calculations': calculations,
        'pw_cpu_total_s': round(total_cpu, 1),
        'pw_cpu_needed_s': round(needed_cpu, 1),
        'pw_cpu_wasted_s': round(total_cpu - needed_cpu, 1),
        'workchain_wall_s': round(chain_wall, 1),
        'pw_wall_critical_path_s': round(critical, 1),
        'pw_wall_sum_s': round(sum(w for runs in stages.values() for _, w in runs), 1),
        'aiida_overhead_wall_ratio': round(chain_wall / critical, 2) if critical else None,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--element', default='Al')
    parser.add_argument('--protocol', default='moderate')
    parser.add_argument('--code', default='pw@localhost')
    parser.add_argument('--pseudo-family', default='multiscale/lda')
    parser.add_argument('--pk', type=int, default=None, help='analyse this finished DftWorkChain instead of running')
    parser.add_argument('--profile', default=None, help='AiiDA profile [default: the default profile]')
    args = parser.parse_args(argv)

    from aiida import load_profile, orm
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    load_profile(args.profile)
    if args.pk is None:
        if not get_daemon_client().is_daemon_running:
            print('the daemon is not running: start it with `verdi daemon start 2`', file=sys.stderr)
            return 1
        from aiida.manage.caching import get_use_cache

        from aiida_multiscale.workflows.dft import DftWorkChain

        if get_use_cache(identifier='aiida.calculations:quantumespresso.pw'):
            print(
                'caching is on for pw.x in this profile (scripts/profile.sh enables it): a repeated run would be '
                'copies and measure nothing.  Switch it off: verdi config unset caching.enabled_for; verdi config set '
                'caching.default_enabled False; verdi daemon stop; verdi daemon start 2',
                file=sys.stderr,
            )
            return 1

        builder = DftWorkChain.get_builder_from_protocol(
            orm.load_code(args.code), element=args.element, protocol=args.protocol, pseudo_family=args.pseudo_family
        )
        node = submit(builder)
        print(f'submitted DftWorkChain<{node.pk}> ({args.element}, {args.protocol})', flush=True)
        while not node.is_terminated:
            time.sleep(5)
    else:
        node = orm.load_node(args.pk)
    summary = analyse(node)
    for key in ('eos', 'elastic'):
        if key in node.outputs:
            summary[key] = {name: round(q['value'], 4) for name, q in node.outputs[key].summary().items()}
    print(json.dumps(summary, indent=2))
    return 0 if node.is_finished_ok else 2


if __name__ == '__main__':
    sys.exit(main())

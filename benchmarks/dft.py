"""Benchmark of the DFT rung: pw.x CPU of `moderate` DftWorkChains (Al, Cu), k-mesh convergence, waste, overhead.

Run by hand (not a test), on the default profile with the daemon running::

    verdi daemon start 2      # if not running
    .venv/bin/python benchmarks/dft.py [--element Al Cu] [--protocol moderate] [--pk PK ...]

It submits one DftWorkChain per element, all at once (or analyses finished ones with ``--pk``) and prints, per
element:

* the pw.x CPU of the strained SCFs on each k-mesh of the convergence loop, the CPU of the first mesh alone (what a
  fixed-mesh run costs: the protocol's mesh, no loop) against that of every mesh (the converged constants), and
  C11, C12, C44 on each mesh with the convergence verdict;

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


def _fit_inputs(node) -> set[str]:
    """UUIDs of every node that entered an EOS or stress-strain fit of ``node`` (the SCF outputs that were used)."""
    fits = ('fit_equation_of_state', 'fit_elastic_constants')
    uuids = set()
    for called in node.called:
        if getattr(called, 'process_label', None) in fits and called.is_finished_ok:
            uuids |= {n.uuid for n in called.base.links.get_incoming().all_nodes()}
    return uuids


def kpoints_cost(node) -> dict:
    """pw.x CPU of the strained SCFs per k-mesh, the fixed-mesh (first mesh) and converged (all meshes) totals."""
    per_mesh: dict[int, float] = {}
    for link in node.base.links.get_outgoing().all():
        child = link.node
        if getattr(child, 'process_label', None) not in ('PwBaseWorkChain', 'MultiscalePwBaseWorkChain'):
            continue
        if link.link_label.startswith('eos'):
            continue
        n = int(child.inputs.kpoints.get_kpoints_mesh()[0][0])
        runs = [c for c in child.called if c.process_label == 'PwCalculation']
        per_mesh[n] = per_mesh.get(n, 0.0) + sum(pw_times(c)[0] for c in runs)
    result = {'strained_cpu_s_by_mesh': {f'{n}^3': round(cpu, 1) for n, cpu in sorted(per_mesh.items())}}
    if 'elastic_convergence' in node.outputs:
        record = node.outputs.elastic_convergence.get_dict()
        first = int(record['meshes'][0]['kpoints_mesh'][0])
        result.update(
            {
                'kpoints_mode': record['mode'],
                'kpoints_converged': record['converged'],
                'kpoints_tolerance': record['tolerance'],
                'cij_by_mesh_gpa': {
                    f'{entry["kpoints_mesh"][0]}^3': [round(entry[n], 2) for n in ('c11', 'c12', 'c44')]
                    for entry in record['meshes']
                },
                'last_change_gpa': {k: round(v, 2) for k, v in (record['last_change_gpa'] or {}).items()},
                # In `refine` mode the first mesh is the protocol's own: what a fixed-mesh run of it costs.
                'strained_cpu_fixed_mesh_s': round(per_mesh.get(first, 0.0), 1),
                'strained_cpu_all_meshes_s': round(sum(per_mesh.values()), 1),
            }
        )
        if result['strained_cpu_fixed_mesh_s']:
            result['converged_over_fixed_cpu_ratio'] = round(
                result['strained_cpu_all_meshes_s'] / result['strained_cpu_fixed_mesh_s'], 2
            )
    return result


def analyse(node) -> dict:
    """Timing summary of a finished DftWorkChain."""
    # The SCFs that were needed are those whose outputs enter a fit calcfunction (eos or elastic, every k-mesh).
    fit_inputs = _fit_inputs(node)
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
        used = {
            child.outputs[label].uuid for label in ('output_parameters', 'output_trajectory') if label in child.outputs
        }
        if runs and child.is_finished_ok and used & fit_inputs:
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
        'element': node.inputs.element.value if 'element' in node.inputs else node.inputs.structure.get_formula(),
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
        **kpoints_cost(node),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--element', nargs='+', default=['Al', 'Cu'])
    parser.add_argument('--protocol', default='moderate')
    parser.add_argument('--code', default='pw@localhost')
    parser.add_argument('--pseudo-family', default=None, help="label of the family [default: the rung's default]")
    parser.add_argument('--pk', type=int, nargs='+', default=None, help='analyse these finished DftWorkChains instead')
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

        nodes = []
        for element in args.element:
            family = {'pseudo_family': args.pseudo_family} if args.pseudo_family else {}
            builder = DftWorkChain.get_builder_from_protocol(
                orm.load_code(args.code), element=element, protocol=args.protocol, **family
            )
            nodes.append(submit(builder))
            print(f'submitted DftWorkChain<{nodes[-1].pk}> ({element}, {args.protocol})', flush=True)
        while not all(node.is_terminated for node in nodes):
            time.sleep(5)
    else:
        nodes = [orm.load_node(pk) for pk in args.pk]
    for node in nodes:
        summary = analyse(node)
        for key in ('eos', 'elastic'):
            if key in node.outputs:
                summary[key] = {
                    name: [round(q['value'], 4), None if q['std'] is None else round(q['std'], 4)]
                    for name, q in node.outputs[key].summary().items()
                }
        print(json.dumps(summary, indent=2))
    return 0 if all(node.is_finished_ok for node in nodes) else 2


if __name__ == '__main__':
    sys.exit(main())

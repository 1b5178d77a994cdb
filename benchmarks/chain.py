"""Benchmark: chain wall time vs the critical path of its engine runs (from the calculations' own times), and ratio.

Usage (the daemon must run, with 2 workers for the reference figure: ``verdi daemon start 2``)::

    python benchmarks/chain.py                 # submit the fast Al chain, wait, analyse
    python benchmarks/chain.py PK              # analyse a finished chain
    python benchmarks/chain.py PK --timeline   # ... and print every event of the chain, in order
    python benchmarks/chain.py --element Cu --protocol fast

Definitions.  The chain's wall time is its node's mtime - ctime.  Each CalcJob's *engine run* is the span of its own
node (creation to the end of parsing: upload, queue, the code itself, retrieve, parse).  Overlapping engine runs run
in parallel (the DFT SCFs of one stage), so the critical path is the length of the union of these spans: the time
during which at least one code was busy.  The ratio wall / critical path measures what the work chains themselves add
(steps, bridges, submission of children, polling); the goal is <= 1.15 for the demo.  The code-only path, from the
times the codes report (pw.x ``wall_time_seconds``, LAMMPS and MOOSE totals when parsed), is printed for reference.

Where the gap goes.  The time of the chain not covered by any engine run is cut at every event the graph records
inside it: creation (ctime) and last change (mtime) of every process node, and the time of every report message of
the work chains.  Each piece longer than 0.5 s is listed with the two events around it, which name its cause (a
calcfunction running, a work chain step between a child's end and the next submission, ...), the longest first.
Inside each engine run, the phases are read from the remote working directory (core.local only): creation ->
upload (the submit script's mtime), upload -> end of the code (the newest output file), end of the code -> the
scheduler found the job done (``scheduler_lastchecktime``), then -> parsed (the node's mtime).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

#: Pieces of the gap shorter than this are not listed (they are still counted in the totals).
MIN_GAP_S = 0.5


def union_length(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``[start, end]`` intervals."""
    return sum(end - start for start, end in union_intervals(intervals))


def union_intervals(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The union of ``[start, end]`` intervals as sorted, disjoint intervals."""
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def code_time(calc) -> float | None:
    """Wall time the code itself reported, when its parser stored it."""
    for label in ('output_parameters', 'results', 'output'):
        if label in calc.outputs:
            try:
                data = calc.outputs[label].get_dict()
            except AttributeError:
                continue
            for key in ('wall_time_seconds', 'total_wall_time', 'wall_time', 'walltime'):
                value = data.get(key)
                if isinstance(value, (int, float)):
                    return float(value)
    return None


def _name(node) -> str:
    """``ProcessLabel<pk>[call link label]``."""
    from aiida.common.links import LinkType

    links = node.base.links.get_incoming(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all()
    label = f'[{links[0].link_label}]' if links else ''
    return f'{node.process_label}<{node.pk}>{label}'


def calcjob_phases(calc, t0: float) -> dict:
    """Times (s from ``t0``) of one CalcJob: created, uploaded, code ended, found done, parsed (None if unknown)."""
    phases = {'created': calc.ctime.timestamp() - t0, 'uploaded': None, 'code_end': None, 'detected': None}
    checked = calc.base.attributes.get('scheduler_lastchecktime', None)
    if checked:
        phases['detected'] = datetime.datetime.fromisoformat(checked).timestamp() - t0
    workdir = calc.get_remote_workdir()
    submit_script = calc.base.attributes.get('submit_script_filename', '_aiidasubmit.sh')
    if workdir and os.path.isdir(workdir) and calc.computer.transport_type == 'core.local':
        entries = {name: os.stat(os.path.join(workdir, name)).st_mtime for name in os.listdir(workdir)}
        if submit_script in entries:
            phases['uploaded'] = entries[submit_script] - t0
            outputs = [t for name, t in entries.items() if name not in ('.aiida', submit_script)]
            phases['code_end'] = max(outputs) - t0 if outputs else None
    phases['parsed'] = calc.mtime.timestamp() - t0
    return phases


def events_of(chain) -> tuple[list[tuple[float, str]], list]:
    """Every (time from the chain's ctime, description) the graph records, in order; and the CalcJob nodes."""
    from aiida import orm

    t0 = chain.ctime.timestamp()
    events, calcs = [], []
    for node in [chain, *chain.called_descendants]:
        if not isinstance(node, orm.ProcessNode):
            continue
        name = _name(node)
        if isinstance(node, orm.CalcJobNode):
            calcs.append(node)
            if node.base.caching.is_created_from_cache:
                events.append((node.ctime.timestamp() - t0, f'{name} taken from the cache'))
                continue
            phases = calcjob_phases(node, t0)
            for key, text in (('uploaded', 'uploaded'), ('code_end', 'code finished'), ('detected', 'found done')):
                if phases[key] is not None:
                    events.append((phases[key], f'{name} {text}'))
        events.append((node.ctime.timestamp() - t0, f'{name} created'))
        events.append((node.mtime.timestamp() - t0, f'{name} {"parsed" if node in calcs else "finished"}'))
        for log in orm.Log.collection.get_logs_for(node):
            message = log.message.split(']: ', 1)[-1]
            events.append((log.time.timestamp() - t0, f'{name} reports "{message[:70]}"'))
    return sorted(events), calcs


def gap_pieces(events: list[tuple[float, str]], covered: list[tuple[float, float]], wall: float) -> list[dict]:
    """The time in [0, wall] outside ``covered``, cut at every event: ``{start, length, after, before}``."""
    gaps, cursor = [], 0.0
    for start, end in covered:
        if start > cursor:
            gaps.append((cursor, start))
        cursor = max(cursor, end)
    if wall > cursor:
        gaps.append((cursor, wall))
    pieces = []
    for start, end in gaps:
        inside = [(t, text) for t, text in events if start < t < end]
        before_start = [text for t, text in events if t <= start + 1e-6]
        bounds = [(start, before_start[-1] if before_start else 'chain created'), *inside]
        after_end = [text for t, text in events if t >= end - 1e-6]
        bounds.append((end, after_end[0] if after_end else 'chain finished'))
        for (t_a, a), (t_b, b) in zip(bounds, bounds[1:]):
            pieces.append({'start': t_a, 'length': t_b - t_a, 'after': a, 'before': b})
    return pieces


def analyse(chain) -> dict:
    from aiida import orm

    events, calcs = events_of(chain)
    t0 = chain.ctime.timestamp()
    spans = [(c.ctime.timestamp() - t0, c.mtime.timestamp() - t0) for c in calcs]
    wall = chain.mtime.timestamp() - t0
    covered = union_intervals(spans)
    critical = sum(end - start for start, end in covered)
    # Code-only path: group overlapping engine runs into stages, the slowest code of each stage is on the path.
    code_path, known = 0.0, True
    for start, end in covered:
        times = [code_time(c) for c, (s, e) in zip(calcs, spans) if s >= start and e <= end]
        known = known and all(t is not None for t in times)
        code_path += max((t for t in times if t is not None), default=0.0)
    pieces = gap_pieces(events, covered, wall)
    # How much of the gap is spent inside calcfunctions (rung and bridge), the rest in work-chain steps and submission.
    functions = union_intervals(
        [
            (n.ctime.timestamp() - t0, n.mtime.timestamp() - t0)
            for n in chain.called_descendants
            if isinstance(n, orm.CalcFunctionNode)
        ]
    )
    gaps = [(p['start'], p['start'] + p['length']) for p in pieces]
    in_functions = sum(max(0.0, min(b, d) - max(a, c)) for a, b in gaps for c, d in functions)
    cached = [c for c in calcs if c.base.caching.is_created_from_cache]
    # Inside the engine runs: mean time per phase, per calculation class.
    phases: dict[str, dict[str, list[float]]] = {}
    for calc in calcs:
        if calc in cached:
            continue
        p = calcjob_phases(calc, t0)
        steps = phases.setdefault(calc.process_label, {})
        marks = [
            ('created', 'upload'),
            ('uploaded', 'queue_and_code'),
            ('code_end', 'poll'),
            ('detected', 'retrieve_and_parse'),
        ]
        times = [p['created'], p['uploaded'], p['code_end'], p['detected'], p['parsed']]
        for (_, label), a, b in zip(marks, times, times[1:]):
            if a is not None and b is not None:
                steps.setdefault(label, []).append(b - a)
    engine_phases = {
        label: {step: round(sum(v) / len(v), 2) for step, v in steps.items()}
        | {'count': len(next(iter(steps.values()), []))}
        for label, steps in phases.items()
    }
    return {
        'chain_pk': chain.pk,
        'chain_uuid': chain.uuid,
        'finished_ok': chain.is_finished_ok,
        'calcjobs': len(calcs),
        'calcjobs_from_cache': len(cached),
        'stages': len(covered),
        'chain_wall_time_s': wall,
        'critical_path_engine_runs_s': critical,
        'ratio': wall / critical if critical else None,
        'gap_s': wall - critical,
        'gap_in_calcfunctions_s': in_functions,
        'gap_in_pieces_over_0.5_s': sum(p['length'] for p in pieces if p['length'] > MIN_GAP_S),
        'code_only_path_s': code_path,
        'code_only_path_complete': known,
        'engine_run_phases_mean_s': engine_phases,
        'goal_ratio': 1.15,
        'gaps': sorted((p for p in pieces if p['length'] > MIN_GAP_S), key=lambda p: -p['length']),
        'events': events,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('pk', nargs='?', help='a finished MultiscaleWorkChain (default: run the fast chain)')
    parser.add_argument('--element', default='Al')
    parser.add_argument('--protocol', default='fast')
    parser.add_argument('--timeline', action='store_true', help='print every event of the chain in order')
    parser.add_argument('--allow-cache', action='store_true', help='submit even if caching is on for the profile')
    parser.add_argument('--top', type=int, default=15, help='how many of the longest gaps to print (default 15)')
    args = parser.parse_args()

    from aiida import load_profile, orm

    load_profile()
    if args.pk:
        chain = orm.load_node(args.pk)
    else:
        from aiida.engine import submit
        from aiida.engine.daemon.client import get_daemon_client

        client = get_daemon_client()
        if not client.is_daemon_running:
            print('start the daemon first: verdi daemon start 2')
            return 1
        from aiida.manage.caching import get_use_cache

        from aiida_multiscale.setup import CACHED_CALCULATIONS
        from aiida_multiscale.workflows.chain import MultiscaleWorkChain

        cached = [name for name in CACHED_CALCULATIONS if get_use_cache(identifier=name)]
        if cached and not args.allow_cache:
            print(
                f'caching is on for {", ".join(cached)} in this profile (scripts/profile.sh enables it): a repeated '
                'chain would be copies and measure nothing.  Switch it off for the benchmark: verdi config unset '
                'caching.enabled_for; verdi config set caching.default_enabled False; verdi daemon stop; '
                'verdi daemon start 2 (or pass --allow-cache).'
            )
            return 1
        chain = submit(MultiscaleWorkChain.get_builder_from_protocol(args.element, protocol=args.protocol))
        workers = client.get_numprocesses().get('numprocesses')
        print(f'submitted MultiscaleWorkChain<{chain.pk}>; daemon workers: {workers}', flush=True)
        while not chain.is_terminated:
            time.sleep(2)
    result = analyse(chain)
    events, gaps = result.pop('events'), result.pop('gaps')
    if args.timeline:
        for t, text in events:
            print(f'{t:8.2f}  {text}')
        print()
    print(json.dumps(result, indent=2))
    print(f'\nlongest gaps outside the engine runs (> {MIN_GAP_S} s, {len(gaps)} in all):')
    for piece in gaps[: args.top]:
        print(
            f'  {piece["length"]:5.2f} s at {piece["start"]:7.2f} s: after {piece["after"]}\n'
            f'{"":24}before {piece["before"]}'
        )
    print(
        f'\nchain wall {result["chain_wall_time_s"]:.1f} s, critical path of engine runs '
        f'{result["critical_path_engine_runs_s"]:.1f} s, ratio {result["ratio"]:.3f} (goal <= 1.15); '
        f'gap {result["gap_s"]:.1f} s ({result["gap_in_pieces_over_0.5_s"]:.1f} s in pieces > {MIN_GAP_S} s); '
        f'code-only path {result["code_only_path_s"]:.1f} s'
    )
    if result['calcjobs_from_cache']:
        print(
            f'WARNING: {result["calcjobs_from_cache"]} of {result["calcjobs"]} calculations were taken from the cache: '
            'these figures do not measure the chain.  Disable caching for the benchmark (`verdi config set caching.'
            'default_enabled False` and `verdi config unset caching.enabled_for` for the profile), restart the daemon.'
        )
    return 0 if result['finished_ok'] else 1


if __name__ == '__main__':
    sys.exit(main())

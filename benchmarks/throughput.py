"""Throughput through a real Slurm queue: N small units of work with 2 daemon workers; units/hour, overhead, busy time.

A *unit* is either the whole chain (``--mode chain``: ``MultiscaleWorkChain`` on its ``fast`` protocol) or, by default,
one small run of each rung's code (``--mode rungs``: a ``PwBaseWorkChain`` SCF of fcc Al, a LAMMPS relaxation of EAM Al
and a MOOSE heat-conduction solve, submitted together).  All of them are submitted at once to the daemon, which sends
every CalcJob through the single-node Slurm of ``scripts/slurm.sh``.

Reported:

- units per hour: N over the wall time from the first submission to the last unit finished;
- overhead per CalcJob: the CalcJob's life (node created -> terminated) minus the time its job held a core in Slurm
  (allocation -> completion, from slurmctld's log), i.e. what AiiDA, the daemon, the transport and the queue add;
  split into created -> sbatch (upload), sbatch -> allocation (queue wait) and job end -> terminated (the next
  ``squeue`` poll, retrieve and parse);
- queue busy fraction: the fraction of the wall time during which at least one job ran, and the fraction of the
  node's core-seconds that jobs held.

The benchmark runs in its own AiiDA configuration (``AIIDA_PATH=.codes/bench-aiida``, profile ``throughput``) with its
own daemon, so it never touches the user's profiles or daemons.  Run it by hand::

    .venv/bin/python benchmarks/throughput.py -n 4          # rungs
    .venv/bin/python benchmarks/throughput.py -n 4 --mode chain
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
SLURM_DIR = pathlib.Path(os.environ.get('SLURM_DIR', ROOT / '.codes' / 'slurm'))
BENCH_AIIDA = ROOT / '.codes' / 'bench-aiida'
PROFILE = 'throughput'
VENV_BIN = pathlib.Path(sys.executable).parent


def _sh(*args, env=None, check=True, timeout=600) -> subprocess.CompletedProcess:
    result = subprocess.run(list(map(str, args)), capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if check and result.returncode != 0:
        sys.exit(f'throughput: {" ".join(map(str, args))} failed: {(result.stderr or result.stdout).strip()[-500:]}')
    return result


def prepare(workers: int) -> dict:
    """Slurm up, an isolated profile with the slurm computer and codes, and a daemon with ``workers`` workers."""
    _sh('bash', ROOT / 'scripts' / 'install_slurm.sh')
    _sh('bash', ROOT / 'scripts' / 'slurm.sh', 'start')
    env = {**os.environ, 'AIIDA_PATH': str(BENCH_AIIDA), 'AIIDA_MULTISCALE_PROFILE': PROFILE,
           'PATH': f'{VENV_BIN}:{os.environ["PATH"]}'}  # fmt: skip
    BENCH_AIIDA.mkdir(parents=True, exist_ok=True)
    _sh('bash', ROOT / 'scripts' / 'profile.sh', env=env)
    os.environ.update(env)

    from aiida import load_profile, orm

    load_profile(PROFILE, allow_switch=True)
    from aiida_multiscale.setup import run_setup

    scratch = BENCH_AIIDA / 'scratch'
    moose = str(ROOT / '.codes' / 'bin' / 'moose')  # what `make moose` installs
    result = run_setup(
        log=lambda _: None, scheduler='core.slurm', workdir=str(scratch), mpiprocs_per_machine=1,
        executables={'moose': moose},
    )  # fmt: skip
    # The N units are identical: with caching (which scripts/profile.sh enables) all but the first would be copies and
    # the figures would measure nothing.  Switched off in this benchmark's own profile, before its daemon starts.
    _sh(VENV_BIN / 'verdi', '-p', PROFILE, 'config', 'unset', 'caching.enabled_for', env=env, check=False)
    _sh(VENV_BIN / 'verdi', '-p', PROFILE, 'config', 'set', 'caching.default_enabled', 'False', env=env)
    _sh(VENV_BIN / 'verdi', '-p', PROFILE, 'daemon', 'stop', env=env, check=False)
    _sh(VENV_BIN / 'verdi', '-p', PROFILE, 'daemon', 'start', workers, env=env)
    family = orm.Group.collection.get(label='multiscale/lda')
    return {'codes': result['codes'], 'family': family, 'env': env}


def _al_scf_builder():
    """The tests' fcc Al SCF builder (``al_scf_builder`` of tests/conftest.py), so that both run the same SCF."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('multiscale_tests_conftest', ROOT / 'tests' / 'conftest.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.al_scf_builder


def submit_rungs(codes, family) -> list:
    """One small run of each code; returns the submitted process nodes."""
    from aiida import orm
    from aiida.engine import submit
    from aiida.plugins import CalculationFactory

    from aiida_multiscale.calculations.moose import MooseCalculation
    from aiida_multiscale.engines.moose.hit import render_hit

    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'withmpi': False,
               'max_wallclock_seconds': 600}  # fmt: skip
    pw = _al_scf_builder()(codes['pw'], family, lattice_constant=4.05, ecutwfc=25.0, kmesh=8)
    pw.pw.metadata.options = options

    potentials = pathlib.Path(__import__('lammps').__file__).parent / 'share' / 'lammps' / 'potentials'
    script = '\n'.join([
        'units metal', 'atom_style atomic', 'lattice fcc 4.0', 'region box block 0 2 0 2 0 2', 'create_box 1 box',
        'create_atoms 1 box', 'mass 1 26.9815', 'pair_style eam/alloy', 'pair_coeff * * Al_zhou.eam.alloy Al',
        'fix relax all box/relax iso 0.0 vmax 0.001', 'minimize 0.0 1.0e-10 10000 100000', '',
    ])  # fmt: skip
    lmp = CalculationFactory('lammps.raw').get_builder()
    lmp.code = codes['lmp']
    lmp.script = orm.SinglefileData(io.BytesIO(script.encode()), filename='input.in')
    lmp.files = {'potential': orm.SinglefileData(potentials / 'Al_zhou.eam.alloy', filename='Al_zhou.eam.alloy')}
    lmp.metadata.options = options

    text = render_hit({
        'Mesh': {'gen': {'type': 'GeneratedMeshGenerator', 'dim': 2, 'nx': 20, 'ny': 20}},
        'Variables': {'u': {}},
        'Kernels': {'diff': {'type': 'Diffusion', 'variable': 'u'},
                    'source': {'type': 'BodyForce', 'variable': 'u', 'value': 1.0}},
        'BCs': {'ends': {'type': 'DirichletBC', 'variable': 'u', 'boundary': 'left right top bottom', 'value': 0}},
        'Executioner': {'type': 'Steady', 'solve_type': 'NEWTON', 'petsc_options_iname': '-pc_type',
                        'petsc_options_value': 'ilu'},
        'Postprocessors': {'mean': {'type': 'ElementAverageValue', 'variable': 'u'}},
        'Outputs': {'csv': True, 'exodus': True, 'file_base': 'heat'},
    })  # fmt: skip
    moose = MooseCalculation.get_builder()
    moose.code = codes['moose']
    moose.input_file = orm.SinglefileData(io.BytesIO(text.encode()), filename='moose.i')
    moose.metadata.options = options
    return [submit(pw), submit(lmp), submit(moose)]


def submit_chain(codes) -> list:
    from aiida.engine import submit
    from aiida.plugins import WorkflowFactory

    chain = WorkflowFactory('multiscale.chain')
    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'withmpi': False,
               'max_wallclock_seconds': 1800}  # fmt: skip
    builder = chain.get_builder_from_protocol('Al', protocol='fast', codes=codes, options=options)
    return [submit(builder)]


def slurm_jobs(since: datetime.datetime) -> dict[str, dict[str, datetime.datetime]]:
    """Submit, allocation and completion times per job id, read from slurmctld's log (no accounting here)."""
    jobs: dict[str, dict] = {}
    patterns = {
        'submit': re.compile(r'^\[([^\]]+)\] _slurm_rpc_submit_batch_job: JobId=(\d+)'),
        'start': re.compile(r'^\[([^\]]+)\] sched: Allocate JobId=(\d+)'),
        'end': re.compile(r'^\[([^\]]+)\] _job_complete: JobId=(\d+) done'),
    }
    for line in (SLURM_DIR / 'log' / 'slurmctld.log').read_text(errors='replace').splitlines():
        for key, pattern in patterns.items():
            if match := pattern.match(line):
                when = datetime.datetime.fromisoformat(match.group(1))
                if when >= since:
                    jobs.setdefault(match.group(2), {})[key] = when
    return jobs


def measure(roots: list, start: datetime.datetime, end: datetime.datetime) -> dict:
    from aiida import orm

    calcs = []
    for root in roots:
        if isinstance(root, orm.CalcJobNode):
            calcs.append(root)
        elif isinstance(root, orm.WorkflowNode):
            calcs.extend(node for node in root.called_descendants if isinstance(node, orm.CalcJobNode))
    jobs = slurm_jobs(start.replace(tzinfo=None) - datetime.timedelta(seconds=1))
    overheads, waits, intervals, before, after = [], [], [], [], []
    for calc in calcs:
        job = jobs.get(str(calc.get_job_id()))
        if not job or not {'submit', 'start', 'end'} <= set(job):
            continue
        intervals.append((job['start'], job['end']))
        if calc.is_killed:
            # Killed by its work chain (a failed rung stops the others): the node ends before its job does, so its
            # "overhead" would be negative.  Its job still held the queue, so the busy figures keep it.
            continue
        held = (job['end'] - job['start']).total_seconds()  # slurmctld's naive local times
        life = (calc.mtime - calc.ctime).total_seconds()
        overheads.append(life - held)
        waits.append((job['start'] - job['submit']).total_seconds())
        # slurmctld logs naive local times; the nodes' times are aware.
        before.append((job['submit'] - calc.ctime.astimezone().replace(tzinfo=None)).total_seconds())
        after.append((calc.mtime.astimezone().replace(tzinfo=None) - job['end']).total_seconds())
    wall = (end - start).total_seconds()
    # Union of the running intervals: the time during which the queue ran at least one job.
    busy, current = 0.0, None
    for lo, hi in sorted(intervals):
        if current is None or lo > current[1]:
            if current:
                busy += (current[1] - current[0]).total_seconds()
            current = [lo, hi]
        else:
            current[1] = max(current[1], hi)
    if current:
        busy += (current[1] - current[0]).total_seconds()
    cores = int(_sh('sinfo', '-h', '-o', '%c').stdout.split()[0])
    held_total = sum((hi - lo).total_seconds() for lo, hi in intervals)

    def stats(values):
        return {'mean': sum(values) / len(values), 'min': min(values), 'max': max(values)} if values else None

    return {
        'calcjobs': len(calcs),
        'calcjobs_matched_to_slurm_jobs': len(intervals),
        'calcjobs_killed': sum(calc.is_killed for calc in calcs),
        'wall_seconds': wall,
        'calcjobs_finished_per_hour': sum(calc.is_finished_ok for calc in calcs) / wall * 3600 if wall else None,
        'overhead_per_calcjob_seconds': stats(overheads),
        'created_to_sbatch_seconds': stats(before),
        'queue_wait_seconds': stats(waits),
        'job_end_to_finished_seconds': stats(after),
        'job_runtime_seconds': stats([(hi - lo).total_seconds() for lo, hi in intervals]),
        'queue_busy_fraction': busy / wall if wall else None,
        'core_busy_fraction': held_total / (wall * cores) if wall else None,
        'cores': cores,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-n', type=int, default=4, help='number of units (>= 4)')
    parser.add_argument('--mode', choices=['rungs', 'chain'], default='rungs')
    parser.add_argument('--workers', type=int, default=2, help='daemon workers')
    parser.add_argument('--timeout', type=float, default=3600)
    parser.add_argument('--keep-daemon', action='store_true', help='leave the benchmark daemon running')
    args = parser.parse_args()

    if args.n < 1:
        parser.error('-n must be at least 1')
    setup = prepare(args.workers)

    start = datetime.datetime.now().astimezone()  # aware, local: slurmctld logs local time
    units = []
    for _ in range(args.n):
        roots = submit_chain(setup['codes']) if args.mode == 'chain' else submit_rungs(setup['codes'], setup['family'])
        units.append(roots)
    print(f'throughput: submitted {args.n} {args.mode} units ({sum(map(len, units))} processes), '
          f'{args.workers} daemon workers', flush=True)  # fmt: skip
    deadline = time.monotonic() + args.timeout
    while not all(node.is_terminated for roots in units for node in roots):
        if time.monotonic() > deadline:
            print('throughput: timed out; killing what is left', file=sys.stderr)
            pks = [str(node.pk) for roots in units for node in roots if not node.is_terminated]
            _sh(VENV_BIN / 'verdi', '-p', PROFILE, 'process', 'kill', '--timeout', '60', *pks, env=setup['env'],
                check=False)  # fmt: skip
            break
        time.sleep(1)
    end = max(node.mtime for roots in units for node in roots)
    failed = [node.pk for roots in units for node in roots if not node.is_finished_ok]
    failed_units = [roots for roots in units if not all(node.is_finished_ok for node in roots)]
    report = measure([node for roots in units for node in roots], start, end)
    report.update({
        'mode': args.mode, 'units': args.n, 'workers': args.workers,
        'units_finished': args.n - len(failed_units), 'failed': failed,
        'units_per_hour': (args.n - len(failed_units)) / report['wall_seconds'] * 3600,
    })  # fmt: skip
    if not args.keep_daemon:
        _sh(VENV_BIN / 'verdi', '-p', PROFILE, 'daemon', 'stop', env=setup['env'], check=False)
    print(json.dumps(report, indent=2, default=str))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

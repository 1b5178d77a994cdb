"""Faults of the machinery in the middle of a chain: the daemon SIGKILLed, RabbitMQ restarted, PostgreSQL restarted.

One fast Al chain runs through the Slurm queue in a private profile on a private PostgreSQL and a private RabbitMQ node
(``tests/private_services.py``: the shared services serve the pytest process and every other test, so they must never
be restarted).  Each fault is injected when the chain is observed at a given rung with a calculation in the queue,
not after a sleep, and the test records what was running at that moment so that it can prove the fault hit a live
chain.  The chain must then finish with exit 0 and the same macro result as the session's ``fast_chain`` (same codes,
same inputs), with exactly the processes the undisturbed chain has (no lost work, no calculation run twice) and no
process left unterminated.
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import sys
import time

import psycopg
import pytest
from conftest import TEST_OVERRIDES
from private_services import chain_summary, private_services
from slurm import squeue

#: A whole fast chain of its own through Slurm (8.5 to 14 min here): run with AIIDA_MULTISCALE_FAULTS=1 or
#: ``make test-faults``.  Out of the default suite until the chain is cheap enough for the suite's time budget (the
#: suite took 56 to 91 min with it on this 2-core machine, against a goal of 30).
RUN_FAULTS = os.environ.get('AIIDA_MULTISCALE_FAULTS', '') not in ('', '0')
pytestmark = [
    pytest.mark.slow,
    pytest.mark.daemon,
    pytest.mark.real_code,
    pytest.mark.skipif(
        not RUN_FAULTS,
        reason='a whole fast chain under faults (about 15 min): AIIDA_MULTISCALE_FAULTS=1 or make test-faults runs it',
    ),
]

BIN = pathlib.Path(sys.prefix) / 'bin'
CHAIN_TIMEOUT = 1800  # s: ~5 min quiet plus the restarts; only stops a stuck chain from hanging the suite
ACTIVE = ('created', 'waiting', 'running')
#: Each fault, the rung during which it is injected, and the code whose calculation must be in the queue then.
FAULTS = (
    ('daemon SIGKILL', 'dft', 'quantumespresso.pw'),
    ('PostgreSQL restart', 'md', 'lammps.raw'),
    ('RabbitMQ restart', 'phase_field', 'multiscale.moose'),
)
#: One daemon worker: after a broker restart RabbitMQ re-sends every task the worker held, and only the worker that is
#: already running a process recognises the task as a duplicate (aiida-core PR #5715).  With two workers the re-sent
#: task can go to the other one, which runs the process a second time: measured here, the MD rung ran twice and the
#: chain excepted ("Cannot add a link from a sealed node"), aiida-core issues #4595 and #1748.  See the "Faults"
#: section of docs/howto_cluster.md.
WORKERS = 1

DAEMON_CONNECTIONS = "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND backend_type = 'client backend'"
SUBMIT = """
import json, sys
from aiida.engine import submit
from aiida_multiscale.workflows.chain import MultiscaleWorkChain
codes = {name: f'{name}@localhost-slurm' for name in ('pw', 'lmp', 'moose')}
builder = MultiscaleWorkChain.get_builder_from_protocol(
    'Al', protocol='fast', codes=codes, overrides=json.loads(sys.argv[1])
)
print(submit(builder).pk)
"""
SUMMARY = """
import json, sys
from private_services import chain_summary
print(json.dumps(chain_summary(int(sys.argv[1]))))
"""


class Monitor:
    """Reads the chain's progress straight from the private database (one short connection per look)."""

    def __init__(self, services, chain_pk: int):
        self.services = services
        self.chain_pk = chain_pk

    def look(self) -> dict | None:
        """``{'chain': state, 'rungs': {label: state}, 'calcjobs': [(pk, plugin, scheduler_state, job_id)]}``."""
        try:
            with psycopg.connect(
                host='127.0.0.1',
                port=self.services.postgres.port,
                user='postgres',
                dbname=self.services.profile.name,
                connect_timeout=5,
            ) as conn:
                chain = conn.execute(
                    "SELECT attributes->>'process_state' FROM db_dbnode WHERE id = %s", (self.chain_pk,)
                ).fetchone()[0]
                rungs = dict(
                    conn.execute(
                        "SELECT l.label, n.attributes->>'process_state' FROM db_dblink l "
                        "JOIN db_dbnode n ON n.id = l.output_id WHERE l.input_id = %s AND l.type = 'call_work'",
                        (self.chain_pk,),
                    ).fetchall()
                )
                calcjobs = conn.execute(
                    "SELECT id, process_type, attributes->>'scheduler_state', attributes->>'job_id' FROM db_dbnode "
                    "WHERE node_type LIKE 'process.calculation.calcjob.%%' "
                    "AND coalesce(attributes->>'process_state', 'created') IN ('created', 'waiting', 'running')"
                ).fetchall()
        except psycopg.OperationalError:
            return None  # PostgreSQL is being restarted
        return {'chain': chain or 'created', 'rungs': rungs, 'calcjobs': calcjobs}

    def wait_for(self, condition, what: str, timeout: float = CHAIN_TIMEOUT) -> dict:
        start = time.monotonic()
        while True:
            state = self.look()
            if state is not None:
                if condition(state):
                    return state
                if state['chain'] not in ACTIVE:
                    pytest.fail(f'the chain ended ({state["chain"]}) before {what}: {state}\n{self.log_tail()}')
            if time.monotonic() - start > timeout:
                pytest.fail(f'no {what} within {timeout} s (last seen: {state})\n{self.log_tail()}')
            time.sleep(1)

    def log_tail(self, lines: int = 40) -> str:
        logs = sorted((self.services.profile.daemon_dir / 'log').glob('*.log'))
        text = '\n'.join(log.read_text(errors='replace') for log in logs)
        return 'daemon log (tail):\n' + '\n'.join(text.splitlines()[-lines:])


@pytest.fixture(scope='module')
def private(slurm):
    """Private services with the codes on ``localhost-slurm`` (made by ``aiida-multiscale setup``) and a daemon."""
    with private_services() as services:
        profile = services.profile
        profile.run(
            BIN / 'aiida-multiscale', '-p', profile.name, 'setup', '--scheduler', 'core.slurm',
            '--workdir', str(services.folder / 'scratch'),
        )  # fmt: skip
        profile.daemon_start(WORKERS)
        yield services


def _rung_with_job(rung: str, plugin: str):
    """Condition: ``rung`` is running and a calculation of ``plugin`` is in the Slurm queue (it has a job id)."""

    def condition(state):
        if state['rungs'].get(rung) not in ACTIVE:
            return False
        return any(ptype and ptype.endswith(plugin) and job_id for _, ptype, _, job_id in state['calcjobs'])

    return condition


def run_with_faults(private) -> tuple[dict, list[dict], float, Monitor]:
    """Submit the fast chain in the private profile, inject the :data:`FAULTS`, wait for the end; return its summary."""
    profile = private.profile
    start = time.monotonic()
    pk = int(profile.python(SUBMIT, json.dumps(TEST_OVERRIDES)).stdout.strip().splitlines()[-1])
    monitor = Monitor(private, pk)
    hits = []

    for fault, rung, plugin in FAULTS:
        state = monitor.wait_for(_rung_with_job(rung, plugin), f'a {plugin} job in the {rung} rung')
        in_queue = [(pk_, job) for pk_, ptype, _, job in state['calcjobs'] if ptype.endswith(plugin) and job]
        hit = {'fault': fault, 'rung': rung, 'calcjobs': in_queue, 'at': time.monotonic() - start}
        print(f'{hit["at"]:.0f} s: {fault} in {rung} with {in_queue} in the queue', flush=True)
        if fault == 'daemon SIGKILL':
            hit['killed'] = profile.daemon_kill()
            # Let the job finish while no daemon runs: the restarted one must pick up a job it did not see end.
            job = in_queue[0][1]
            deadline = time.monotonic() + 300
            while squeue(job) and time.monotonic() < deadline:
                time.sleep(1)
            hit['job_left_queue'] = not squeue(job)
            profile.daemon_start(WORKERS)
        elif fault == 'RabbitMQ restart':
            # The connections the restart cuts (the daemon worker's, the only AMQP client of this node).
            listing = private.rabbitmq.ctl('list_connections', 'name', '--quiet', '--no-table-headers').stdout
            hit['cut'] = len([line for line in listing.splitlines() if line.strip()])
            private.rabbitmq.restart()
        else:
            # The worker holds a database connection only while it works on a process (none while it just waits for
            # Slurm): restart when one is open, so that the restart cuts a connection in use.
            hit['cut'] = 0
            deadline = time.monotonic() + 300
            while not hit['cut'] and time.monotonic() < deadline:
                hit['cut'] = int(private.postgres.psql(DAEMON_CONNECTIONS.format(profile.name)).strip())
            private.postgres.restart()
            hit['at'] = time.monotonic() - start
        hits.append(hit)

    monitor.wait_for(lambda s: s['chain'] not in ACTIVE, 'the end of the chain')
    wall = time.monotonic() - start
    result = json.loads(profile.python(SUMMARY, str(pk)).stdout.strip().splitlines()[-1])
    print(f'fault chain <{pk}>: {wall:.0f} s; faults at ' + ', '.join(f'{h["fault"]} {h["at"]:.0f} s' for h in hits))
    return result, hits, wall, monitor


def test_chain_survives_faults(private, fast_chain):
    """SIGKILL of the daemon in the DFT rung, a PostgreSQL restart in MD, a RabbitMQ restart in phase field."""
    result, hits, _, monitor = run_with_faults(private)
    reference = chain_summary(fast_chain.pk)

    assert result['exit_status'] == 0, f'[{result["exit_status"]}] {result["exit_message"]}\n{monitor.log_tail()}'
    assert result['unterminated'] == [], f'processes left unterminated: {result["unterminated"]}'

    # Nothing lost, nothing run twice: the same processes, under the same call-link paths, as the undisturbed chain.
    paths = collections.Counter(entry['path'] for entry in result['calls'])
    assert [path for path, n in paths.items() if n > 1] == [], 'duplicate calculations'
    assert paths == collections.Counter(entry['path'] for entry in reference['calls'])

    # All calculations went through the queue.
    for entry in result['calls']:
        if 'computer' in entry:
            assert (entry['computer'], entry['scheduler']) == ('localhost-slurm', 'core.slurm'), entry
            assert entry['job_id'] and entry['job_id'].isdigit(), entry

    # Same executables and inputs, each code on one process in both runs (the protocols ask for one MPI process and
    # withmpi False, whatever the computer's default), deterministic seeds: the numbers can only differ by round-off,
    # and measured here they were bit-identical.  A calculation redone after a fault reproduces its numbers too, so
    # this check is about lost or mixed-up results (a handoff from the wrong calculation), not about re-runs.
    assert result['macro'].keys() == reference['macro'].keys()
    differences = {
        name: abs(result['macro'][name]['value'] / spec['value'] - 1) for name, spec in reference['macro'].items()
    }
    print('relative macro differences from the undisturbed chain:', differences)
    for name, spec in reference['macro'].items():
        got = result['macro'][name]
        assert got['unit'] == spec['unit'], name
        assert got['value'] == pytest.approx(spec['value'], rel=1e-9), name
        if spec['std'] is None:
            assert got['std'] is None, name
        else:
            assert got['std'] == pytest.approx(spec['std'], rel=1e-9), name

    # Every fault hit a live chain: the daemon had circus and its workers, the broker and the database had live
    # connections of the daemon, and the calculations in the queue at that moment belong to the chain and finished.
    calls = {entry['pk']: entry for entry in result['calls']}
    for hit in hits:
        if 'killed' in hit:
            assert len(hit['killed']) >= 1 + WORKERS, f'expected circus and {WORKERS} worker(s): {hit}'
            assert hit['job_left_queue'], f'the Slurm job did not end while the daemon was down: {hit}'
        else:
            assert hit['cut'] >= 1, f'{hit["fault"]} cut no connection of the daemon: {hit}'
        for calc_pk, _ in hit['calcjobs']:
            assert calc_pk in calls, f'{hit["fault"]}: CalcJob<{calc_pk}> is not part of the chain'
            entry = calls[calc_pk]
            assert entry['path'].startswith(hit['rung'] + '/'), (hit, entry)
            assert entry['exit_status'] == 0, (hit, entry)

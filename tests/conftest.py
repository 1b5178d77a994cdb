"""Test fixtures: a throw-away AiiDA profile on the real PostgreSQL + RabbitMQ, and the codes set up in it.

``aiida.tools.pytest_fixtures`` gives a SQLite profile without a broker by default.  We override ``aiida_profile``
so that every test session runs on what users run: a fresh PostgreSQL database (dropped afterwards) and RabbitMQ,
with a daemon that tests can start and stop.  Nothing is left behind: the config folder is temporary, the database
is dropped with ``WITH (FORCE)`` and the daemon is stopped by the stock ``daemon_client`` fixture.
"""

from __future__ import annotations

import os
import pathlib
import secrets
import subprocess
import sys
import time

import pytest

pytest_plugins = ['aiida.tools.pytest_fixtures', 'slurm']

PG_HOST = os.environ.get('AIIDA_MULTISCALE_PGHOST', '127.0.0.1')
PG_PORT = int(os.environ.get('AIIDA_MULTISCALE_PGPORT', '5432'))
PG_SUPERUSER = os.environ.get('AIIDA_MULTISCALE_PGSUPERUSER', 'postgres')
FIXTURES = pathlib.Path(__file__).parent / 'fixtures'

# The daemon is started as `verdi ... daemon start-circus`: `verdi` of this environment must be on PATH even when
# pytest is run without activating the venv.
_BIN = str(pathlib.Path(sys.prefix) / 'bin')
if _BIN not in os.environ.get('PATH', '').split(os.pathsep):
    os.environ['PATH'] = _BIN + os.pathsep + os.environ.get('PATH', '')

# The package looks for MOOSE on PATH or in $AIIDA_MULTISCALE_MOOSE only; the tests run from the checkout, so they use
# the launcher `make moose` installs there unless the environment names another one.
_CHECKOUT_MOOSE = pathlib.Path(__file__).resolve().parent.parent / '.codes' / 'bin' / 'moose'
if _CHECKOUT_MOOSE.exists():
    os.environ.setdefault('AIIDA_MULTISCALE_MOOSE', str(_CHECKOUT_MOOSE))


def _psql(sql: str) -> None:
    subprocess.run(
        [
            'psql',
            '-h',
            PG_HOST,
            '-p',
            str(PG_PORT),
            '-U',
            PG_SUPERUSER,
            '-d',
            'postgres',
            '-v',
            'ON_ERROR_STOP=1',
            '-qc',
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope='session')
def aiida_profile(aiida_config, aiida_profile_factory, tmp_path_factory):
    """A temporary profile on PostgreSQL (``core.psql_dos``) with RabbitMQ (``core.rabbitmq``)."""
    name = f'test_multiscale_{secrets.token_hex(6)}'
    _psql(f"CREATE DATABASE {name} OWNER {PG_SUPERUSER} ENCODING 'UTF8' TEMPLATE template0")
    repository = tmp_path_factory.mktemp('repository')
    storage_config = {
        'database_engine': 'postgresql_psycopg',
        'database_hostname': PG_HOST,
        'database_port': PG_PORT,
        'database_username': PG_SUPERUSER,
        'database_password': '',
        'database_name': name,
        'repository_uri': f'file://{repository}',
    }
    try:
        with aiida_profile_factory(
            aiida_config,
            storage_backend='core.psql_dos',
            storage_config=storage_config,
            broker_backend='core.rabbitmq',
            name=name,
        ) as profile:
            # As scripts/profile.sh: with the default poll interval (60 s) engine.run notices a finished child only
            # that late, and the default daemon timeout (2 s) expires under load.
            aiida_config.set_option('runner.poll.interval', 1, scope=profile.name)
            aiida_config.set_option('daemon.timeout', 20, scope=profile.name)
            aiida_config.set_option('warnings.rabbitmq_version', False)
            # Not flagged as a test profile: for one that is, aiida-core sets the runner's poll interval to 0
            # (aiida/manage/manager.py, Manager.create_runner), so that every process waiting on a child asks the
            # database for the child's state on every turn of the event loop, in this pytest process and in every
            # daemon worker.  Measured here (py-spy on a worker during the fast chain): about 35 % of a core per
            # worker, half of it in Runner._poll_process, taken from pw.x and MOOSE on a 2-core machine.  Unflagged,
            # runner.poll.interval (1 s, above) holds, as in a user's profile.  The profile is thrown away all the
            # same (its database is dropped below).  Before any broker connection: the flag also sets kiwipy's
            # testing mode (auto-delete exchanges), which must be the same in this process and the daemon's.
            profile.is_test_profile = False
            aiida_config.update_profile(profile)
            aiida_config.store()
            from aiida.manage import get_manager

            get_manager().reset_runner()
            get_manager().reset_broker()
            yield profile
    finally:
        from aiida.manage import get_manager

        try:
            get_manager().get_profile_storage().close()
        except Exception:
            pass
        _psql(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')


@pytest.fixture(scope='session')
def multiscale_setup(aiida_profile, tmp_path_factory):
    """Computer ``localhost``, codes pw/lmp/moose and the pseudo families, made by the real ``setup`` code path."""
    from aiida_multiscale.setup import run_setup

    workdir = tmp_path_factory.mktemp('scratch')
    return run_setup(log=lambda _: None, workdir=str(workdir))


def al_scf_builder(code, family, lattice_constant: float = 4.05, ecutwfc: float = 20.0, kmesh: int = 6):
    """Builder for a ``PwBaseWorkChain`` SCF of one-atom fcc Al: coarse settings, a few seconds of pw.x."""
    from aiida import orm
    from aiida.plugins import WorkflowFactory
    from ase.build import bulk

    PwBaseWorkChain = WorkflowFactory('quantumespresso.pw.base')  # noqa: N806
    structure = orm.StructureData(ase=bulk('Al', 'fcc', a=lattice_constant))
    kpoints = orm.KpointsData()
    kpoints.set_kpoints_mesh([kmesh] * 3)
    builder = PwBaseWorkChain.get_builder()
    builder.pw.code = code
    builder.pw.structure = structure
    builder.pw.pseudos = family.get_pseudos(structure=structure)
    builder.pw.parameters = orm.Dict(
        {
            'CONTROL': {'calculation': 'scf', 'tprnfor': True, 'tstress': True},
            'SYSTEM': {
                'ecutwfc': ecutwfc,
                'ecutrho': 4 * ecutwfc,
                'occupations': 'smearing',
                'smearing': 'mv',
                'degauss': 0.02,
            },
            'ELECTRONS': {'conv_thr': 1e-8},
        }
    )
    builder.kpoints = kpoints
    builder.pw.metadata.options = {
        'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1},
        'withmpi': False,
        'max_wallclock_seconds': 600,
    }
    builder.metadata.label = 'test: fcc Al SCF'
    return builder


@pytest.fixture(scope='session')
def build_al_scf():
    """The function :func:`al_scf_builder` ``(code, family, lattice_constant=4.05, ecutwfc=20.0, kmesh=6)``.

    A small real pw.x run for the tests of the set-up, the resources and the Slurm queue, which need a calculation
    but not a rung.
    """
    return al_scf_builder


@pytest.fixture(scope='session')
def codes(multiscale_setup):
    """``{'pw': Code, 'lmp': Code, 'moose': Code}``."""
    return multiscale_setup['codes']


@pytest.fixture(scope='session')
def pseudo_family(multiscale_setup):
    """The LDA pseudopotential family (Al.pz-vbc and friends)."""
    return multiscale_setup['families']['multiscale/lda']


CHAIN_TIMEOUT = 1200  # s: the budget is ~6 min unloaded; this only stops a hung run from hanging the suite
#: The test size of the fast chain: a smaller phase field (20 grains on 40 x 40 down to 10, the starting grain 10
#: elements across, interface 3 elements, 8 order parameters, one realisation: 8 cycles of 0.1 in about 110 s here,
#: 20 -> 10 grains, self-similar, no merge; the explicit step, stable at dt ~ dx^2, makes the cost grow as grid^4,
#: so 48 x 48 costs about twice as much), and a crystal-plasticity RVE of at most 36 elements (about a minute of
#: CPU instead of three).  The fast protocol's 50 steps
#: stay: fewer steps asked are cut back more often by MOOSE and cost more (benchmarks/fem.py --plasticity: 30 steps
#: 63 s, 50 steps 52 s of CPU on 36 elements).
TEST_OVERRIDES = {
    'phase_field': {
        'overrides': {
            'parameters': {
                'grid': 40,
                'grains': 20,
                'min_grains': 10,
                'interface_elements': 3,
                # 8, not 6: with 6 the re-colouring of ~19 grains in this small box could not keep touching grains
                # apart, and they coalesced (merges after each restart, 19 -> 15 grains at the first restart).
                'order_parameters': 8,
                'cycle_time': 0.1,
                'max_cycles': 8,
                'frames_per_cycle': 4,
                'dt_max_fraction': 0.25,
            }
        }
    },
    'fem': {'overrides': {'plasticity': {'overrides': {'max_elements': 36}}}},
    # The MD mobility stage (minutes of driven MD) is left out of the suite's chains: the mobility is given by hand, as
    # assumptions (test_md_workchain runs the stage, test_md_to_mesoscale hands a computed mobility on).
    'md': {'overrides': {'parameters': {'mobility': {'compute': False}}}},
    # A short anneal from 1 um grains: reduced time about 2 at 560 K (3.9 at 650 K, test_caching), beyond the 0.8 the
    # test's phase field simulates, so the law extrapolates (by 2.5 and 4.8), and grains of a few um, as in the
    # fast chain before the real anneal.  With the protocol's hour from 10 um the grains grow to millimetres, where the
    # crystal-plasticity RVE's critical resolved shear stress (5 MPa) makes its Newton solve cut back at nearly every
    # step (95 steps to 8.5 of 50 load steps measured): too slow for the suite.
    'assumptions': {
        'anneal_time': {'value': 2.6e-4, 'source': 'test: reduced time about 2 at 560 K'},
        'initial_grain_size': {'value': 1.0e-6, 'source': 'test: a fine recrystallised grain'},
        # The MOOSE Cu grain-growth example's M0 and Q with one decade of uncertainty, as the suite's chains had them.
        'mobility_prefactor': {'value': 2.5e-6, 'relative_std': 2.302585, 'source': 'test: by hand, MOOSE Cu example'},
        'activation_energy': {'value': 0.23, 'std': 0.05, 'source': 'test: by hand, MOOSE Cu example'},
    },
}


@pytest.fixture(scope='session')
def fast_chain(daemon_client, codes, pseudo_family):
    """A fast Al chain run to the end by the daemon (2 workers, as in the benchmark).

    Session-scoped: the chain tests, the caching test and the fault tests (which compare their macro result with this
    one) share this one run.
    """
    from aiida.engine import submit

    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon(number_workers=2)
    builder = MultiscaleWorkChain.get_builder_from_protocol(
        'Al', protocol='fast', codes=codes, overrides=TEST_OVERRIDES
    )
    node = submit(builder)
    start = time.monotonic()
    while not node.is_terminated:
        if time.monotonic() - start > CHAIN_TIMEOUT:
            pytest.fail(f'MultiscaleWorkChain<{node.pk}> did not finish in {CHAIN_TIMEOUT} s')
        time.sleep(2)
    node.base.extras.set('test_wall_time', time.monotonic() - start)
    return node


@pytest.fixture(scope='session')
def embedded_profile(tmp_path_factory):
    """The embedded profile (SQLite + ZeroMQ) made by ``scripts/profile_embedded.sh``, set up, its daemon running.

    One per session, shared by ``test_reproduce`` and ``test_embedded`` (helpers in ``tests/embedded_profile.py``).
    """
    from embedded_profile import embedded_profile as make_embedded_profile

    with make_embedded_profile(tmp_path_factory.mktemp('embedded')) as profile:
        yield profile


@pytest.fixture(scope='session')
def embedded_reproduction(fast_chain, embedded_profile, tmp_path_factory):
    """The session's fast chain, archived and reproduced in the embedded profile by ``aiida-multiscale reproduce``.

    The one real rerun of the chain that ``test_reproduce`` (the command's report) and ``test_embedded`` (a chain
    through the embedded daemon, whose calculations the profile's caching takes from this rerun) share.  The daemon is
    stopped: ``reproduce`` runs its chain in its own process and needs neither the daemon nor the broker.  Returns
    ``{'archive', 'returncode', 'stdout', 'stderr', 'report', 'rerun'}``: ``report`` is the command's JSON (``None``
    if it printed none), ``rerun`` the :data:`embedded_profile.CHAIN_SUMMARY` of the reproduced chain.
    """
    import json

    from aiida.tools.archive import create_archive

    assert fast_chain.is_finished_ok, fast_chain.exit_message
    archive = tmp_path_factory.mktemp('reproduce') / 'chain.aiida'
    create_archive([fast_chain], filename=str(archive))
    embedded_profile.daemon_stop()
    result = embedded_profile.cli('reproduce', archive, '--json', timeout=CHAIN_TIMEOUT + 600, check=False)
    lines = result.stdout.strip().splitlines()
    try:
        report = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        report = None
    rerun = None
    if report and len(report.get('chains', [])) == 1 and report['chains'][0].get('reproduced_chain'):
        rerun = embedded_profile.summary(report['chains'][0]['reproduced_chain'])
    return {
        'archive': archive,
        'returncode': result.returncode,
        'stdout': result.stdout,
        'stderr': result.stderr,
        'report': report,
        'rerun': rerun,
    }

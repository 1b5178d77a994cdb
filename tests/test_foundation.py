"""The foundation: the test profile really is PostgreSQL + RabbitMQ, and set-up makes working codes."""

import pytest


def test_profile_is_postgres_and_rabbitmq(aiida_profile):
    """Tests must run on the services users run, never SQLite."""
    assert aiida_profile.storage_backend == 'core.psql_dos'
    assert aiida_profile.process_control_backend == 'core.rabbitmq'
    from aiida.manage import get_manager

    # A real connection: the broker answers and the storage holds the default user.
    assert get_manager().get_communicator() is not None
    from aiida import orm

    assert orm.User.collection.get_default() is not None


def test_runner_waits_on_children_at_the_configured_interval(aiida_profile):
    """Processes waiting on children ask the database every second, not on every turn of the event loop.

    aiida-core sets a poll interval of 0 for a profile flagged as a test profile; conftest unflags this one so that the
    daemon workers and this process leave the cores to pw.x, lmp and MOOSE.  The daemon workers read the same flag and
    option from the stored configuration, checked here too.
    """
    from aiida.manage import get_manager
    from aiida.manage.configuration import get_config

    manager = get_manager()
    assert manager.get_profile().is_test_profile is False
    assert get_config().get_profile(aiida_profile.name).is_test_profile is False
    assert manager.get_option('runner.poll.interval') == 1
    assert manager.get_runner()._poll_interval == 1


def test_setup_creates_codes_and_families(multiscale_setup):
    codes = multiscale_setup['codes']
    assert {c.default_calc_job_plugin for c in codes.values()} == {
        'quantumespresso.pw',
        'lammps.base',
        'multiscale.moose',
    }
    lda = multiscale_setup['families']['multiscale/lda']
    assert 'Al' in lda.elements and lda.get_pseudo('Al').filename == 'Al.pz-vbc.UPF'
    # LDA and PBE files are never mixed in one family.
    for family in multiscale_setup['families'].values():
        kinds = {'.pz-' in node.filename for node in family.nodes}
        assert len(kinds) == 1


def test_setup_is_idempotent(multiscale_setup, tmp_path):
    from aiida_multiscale.setup import run_setup

    again = run_setup(
        log=lambda _: None, workdir=str(multiscale_setup['computer'].get_workdir()).replace('/{username}', '')
    )
    assert again['computer'].pk == multiscale_setup['computer'].pk
    assert {k: c.pk for k, c in again['codes'].items()} == {k: c.pk for k, c in multiscale_setup['codes'].items()}


@pytest.mark.daemon
@pytest.mark.real_code
def test_pw_scf_through_daemon(codes, pseudo_family, submit_and_await, build_al_scf):
    """A real pw.x SCF of fcc Al through PwBaseWorkChain, the daemon and RabbitMQ."""
    builder = build_al_scf(codes['pw'], pseudo_family)
    node = submit_and_await(builder, timeout=300)
    assert node.is_finished_ok, node.exit_message
    energy = node.outputs.output_parameters['energy']
    # Al.pz-vbc at a = 4.05 A, ecutwfc 20 Ry: about -57.3 eV per atom; a wrong pseudo or units would be far off.
    assert -58.5 < energy < -56.0

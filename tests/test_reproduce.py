"""``aiida-multiscale reproduce``: the comparison rule, and the session's fast chain rerun from its archive."""

from __future__ import annotations

import json

import pytest

from aiida_multiscale.cli.reproduce import compare_macro


@pytest.mark.unit
def test_compare_macro_verdicts():
    """Within --stds of the combined std (or --rtol of the value when there is no std) is reproduced; else not."""
    archived = {
        'youngs_modulus': {'value': 70.0e9, 'unit': 'Pa', 'std': 2.0e9},
        'poisson_ratio': {'value': 0.35, 'unit': 'dimensionless', 'std': None},
        'mean_grain_size': {'value': 1.0e-6, 'unit': 'm', 'std': 1.0e-8},
    }
    reproduced = {
        'youngs_modulus': {'value': 71.0e9, 'unit': 'Pa', 'std': 2.0e9},
        'poisson_ratio': {'value': 0.35 * (1 + 1e-7), 'unit': 'dimensionless', 'std': None},
    }
    rows = {row['quantity']: row for row in compare_macro(archived, reproduced, stds=1.0, rtol=1e-6)}
    assert rows['youngs_modulus']['verdict'] == 'reproduced'
    assert rows['youngs_modulus']['difference_stds'] == pytest.approx(1.0e9 / (2.0e9 * 2**0.5))
    assert rows['poisson_ratio']['verdict'] == 'reproduced' and rows['poisson_ratio']['difference_stds'] is None
    assert rows['mean_grain_size']['verdict'] == 'missing'
    strict = {row['quantity']: row for row in compare_macro(archived, reproduced, stds=0.1, rtol=1e-9)}
    assert strict['youngs_modulus']['verdict'] == 'differs' and strict['poisson_ratio']['verdict'] == 'differs'


@pytest.mark.slow
@pytest.mark.daemon
@pytest.mark.real_code
@pytest.mark.timeout(2400)
def test_reproduce_fast_chain_from_archive(fast_chain, embedded_reproduction):
    """Archive the fast chain, reproduce it with the CLI: one new chain, run with caching off, same macro values.

    The archive is reproduced where a user would: in another profile, here the embedded one (SQLite + ZeroMQ) of the
    session (``embedded_reproduction`` in ``tests/conftest.py``, shared with ``test_embedded``), whose computer is not
    the archive's, so the codes are swapped for the profile's own.
    """
    run = embedded_reproduction
    assert run['returncode'] == 0, run['stdout'] + run['stderr']
    report = run['report']
    assert report['reproduced'] is True
    (chain,) = report['chains']
    assert chain['archived_chain'] == fast_chain.uuid
    names = {row['quantity'] for row in chain['quantities']}
    assert names == set(fast_chain.outputs.macro.names)
    assert all(row['verdict'] == 'reproduced' for row in chain['quantities']), chain['quantities']
    # The archived codes run on the archive's computer, not configured in this profile: each one is replaced.
    for label in ('pw', 'lmp', 'moose'):
        assert f'(archived) -> {label}@localhost (this machine)' in run['stderr'], run['stderr']
    rerun = run['rerun']
    assert rerun['ok'] and rerun['uuid'] == chain['reproduced_chain'] and rerun['uuid'] != fast_chain.uuid, rerun
    # Caching off: not one calculation of the rerun was taken from the cache (the embedded profile enables caching).
    calcs = rerun['calculations']
    assert calcs and not any(calc['cached_from'] for calc in calcs), calcs
    youngs = rerun['macro']['youngs_modulus']
    assert youngs['value'] == pytest.approx(fast_chain.outputs.macro.value('youngs_modulus', youngs['unit']), rel=1e-6)


@pytest.mark.slow
@pytest.mark.daemon
def test_reproduce_refuses_sqlite_with_busy_daemon_fake(embedded_profile, embedded_reproduction):
    """On SQLite (one writer) with the daemon running a process, reproduce stops before importing: one line, exit 1.

    The running process is a fake (a stored WorkflowNode in state ``waiting``, no task for the daemon): what the check
    reads is the process state.  The import would otherwise hold the write lock while the daemon's writes time out.
    """
    count_chains = (
        'from aiida import orm\n'
        "print(orm.QueryBuilder().append(orm.WorkflowNode, filters={'process_type': "
        "'aiida.workflows:multiscale.chain'}).count())"
    )
    make_fake = (
        'from aiida import orm\nfrom plumpy.process_states import ProcessState\n'
        'node = orm.WorkflowNode()\nnode.set_process_state(ProcessState.WAITING)\nnode.store()\nprint(node.pk)'
    )
    end_fake = (
        'import sys\nfrom aiida import orm\nfrom plumpy.process_states import ProcessState\n'
        'node = orm.load_node(int(sys.argv[1]))\nnode.set_process_state(ProcessState.KILLED)\nnode.seal()'
    )
    embedded_profile.daemon_start()
    chains = embedded_profile.python(count_chains).strip()
    fake = embedded_profile.python(make_fake).strip().splitlines()[-1]
    try:
        result = embedded_profile.cli('reproduce', embedded_reproduction['archive'], check=False, timeout=300)
    finally:
        embedded_profile.python(end_fake, fake)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error: '), result.stderr
    assert 'SQLite' in lines[0] and 'database is locked' in lines[0] and 'verdi daemon stop' in lines[0], lines[0]
    assert 'Traceback' not in result.stdout + result.stderr
    assert embedded_profile.python(count_chains).strip() == chains  # nothing rerun


@pytest.mark.parametrize(
    'content',
    [b'', b'not an archive at all\n' * 10, b'PK\x03\x04' + b'\x00' * 200],
    ids=['empty', 'text', 'truncated_zip'],
)
def test_reproduce_corrupt_archive_is_one_line(aiida_profile, tmp_path, content):
    """A file that is not a readable AiiDA archive: one error line naming the file, exit 1, nothing imported."""
    from aiida import orm
    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    archive = tmp_path / 'chain.aiida'
    archive.write_bytes(content)
    before = orm.QueryBuilder().append(orm.Node).count()
    result = CliRunner().invoke(cli, ['reproduce', str(archive)])
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error: ') and str(archive) in lines[0], result.output
    assert 'Traceback' not in result.output
    assert orm.QueryBuilder().append(orm.Node).count() == before


@pytest.mark.parametrize('version', ['0.4', 'main_9999'])
def test_reproduce_archive_of_another_version_fake(aiida_profile, tmp_path, version):
    """An archive whose metadata names another schema version (a fake: metadata only): one line that says to migrate."""
    import zipfile

    from click.testing import CliRunner

    from aiida_multiscale.cli import cli

    archive = tmp_path / 'old.aiida'
    with zipfile.ZipFile(archive, 'w') as handle:
        handle.writestr('metadata.json', json.dumps({'export_version': version, 'aiida_version': '1.0.0'}))
    result = CliRunner().invoke(cli, ['reproduce', str(archive)])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1, repr(result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f'Archive schema version `{version}` is incompatible' in lines[0]
    assert 'verdi archive migrate' in lines[0] and 'Traceback' not in result.output

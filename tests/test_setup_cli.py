"""``aiida-multiscale setup`` on bad input: one clear line, non-zero exit, nothing half-created, rerun succeeds."""

import copy
import json
import os
import pathlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

from aiida_multiscale.cli import cli

BIN = pathlib.Path(sys.prefix) / 'bin'


def _computer_exists(label):
    from aiida import orm

    return orm.QueryBuilder().append(orm.Computer, filters={'label': label}).count() == 1


def _one_error_line(output):
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith('Error: ')
    return lines[0]


@pytest.mark.real_code
def test_missing_executable_then_fixed(multiscale_setup, tmp_path):
    runner = CliRunner()
    args = ['setup', '--computer-label', 'bad-exe', '--workdir', str(tmp_path)]
    result = runner.invoke(cli, [*args, '--pw', '/nonexistent/pw.x'])
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert '/nonexistent/pw.x does not exist' in line and '--pw' in line
    assert not _computer_exists('bad-exe')
    # The fix: the default pw.x.  The rerun creates everything.
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert _computer_exists('bad-exe')


@pytest.mark.real_code
def test_executable_that_does_not_run_fake(multiscale_setup, tmp_path):
    """A fake ``moose`` script that fails like a MOOSE app missing its shared libraries."""
    fake = tmp_path / 'moose'
    fake.write_text('#!/bin/sh\necho "error while loading shared libraries: libmesh.so" >&2\nexit 127\n')
    fake.chmod(0o755)
    result = CliRunner().invoke(cli, ['setup', '--computer-label', 'bad-moose', '--moose', str(fake)])
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert 'MOOSE' in line and 'libmesh.so' in line and 'make moose' in line
    assert not _computer_exists('bad-moose')


def test_missing_pseudo_folder(multiscale_setup, tmp_path):
    result = CliRunner().invoke(
        cli, ['setup', '--computer-label', 'bad-pseudo', '--pseudo-folder', str(tmp_path / 'nope'), '--no-check']
    )
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert 'nope does not exist' in line and '--pseudo-folder' in line
    assert not _computer_exists('bad-pseudo')


def test_pseudo_file_of_another_md5_is_not_used(multiscale_setup, tmp_path):
    """A UPF file whose md5 differs from the one whose cutoffs were converged is left out: here the only one."""
    original = pathlib.Path('/usr/share/espresso/pseudo/Al.pz-vbc.UPF').read_text()
    (tmp_path / 'Al.pz-vbc.UPF').write_text(original.replace('</PP_INFO>', ' edited </PP_INFO>', 1))
    result = CliRunner().invoke(
        cli, ['setup', '--computer-label', 'bad-md5', '--pseudo-folder', str(tmp_path), '--no-check']
    )
    assert result.exit_code == 1
    line = _one_error_line(result.output)
    assert 'none of the UPF files with converged cutoffs' in line and 'Al.pz-vbc.UPF' in line
    assert '--pseudo-folder' in line and 'aiida-pseudo install sssp' in line
    assert not _computer_exists('bad-md5')


def test_failure_half_way_leaves_nothing_mock_failure(multiscale_setup, monkeypatch, tmp_path):
    """A failure after the computer and codes were created (faked here) deletes them again."""
    from aiida import orm

    from aiida_multiscale.setup import pseudos, run_setup

    def broken(*args, **kwargs):
        raise RuntimeError('simulated failure while creating the pseudo families')

    monkeypatch.setattr(pseudos, 'get_or_create_families', broken)
    codes_before = orm.QueryBuilder().append(orm.InstalledCode).count()
    with pytest.raises(RuntimeError, match='simulated failure'):
        run_setup(log=lambda _: None, computer_label='half-way', workdir=str(tmp_path), check_executables=False)
    assert not _computer_exists('half-way')
    assert orm.QueryBuilder().append(orm.InstalledCode).count() == codes_before


def _broken_profile_env(aiida_config, aiida_profile, tmp_path, section, key):
    """A config folder holding a copy of the test profile with one service pointing at a closed port."""
    config = json.loads(pathlib.Path(aiida_config.dirpath, 'config.json').read_text())
    profile = copy.deepcopy(config['profiles'][aiida_profile.name])
    profile[section]['config'][key] = 1  # nothing listens on port 1
    config['profiles'] = {'broken': profile}
    config['default_profile'] = 'broken'
    folder = tmp_path / '.aiida'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps(config))
    env = dict(os.environ, AIIDA_PATH=str(tmp_path))
    env['PATH'] = f'{BIN}:{env["PATH"]}'
    return env


@pytest.mark.parametrize(
    ('section', 'key', 'message', 'fix'),
    [
        ('storage', 'database_port', 'PostgreSQL does not answer at', 'pg_ctlcluster'),
        ('process_control', 'broker_port', 'RabbitMQ does not answer at', 'rabbitmq-server -detached'),
    ],
)
def test_unreachable_service(aiida_config, aiida_profile, tmp_path, section, key, message, fix):
    env = _broken_profile_env(aiida_config, aiida_profile, tmp_path, section, key)
    result = subprocess.run(
        [str(BIN / 'aiida-multiscale'), '-p', 'broken', 'setup', '--no-check'],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    line = _one_error_line(result.stderr)
    assert message in line and ':1 ' in line and fix in line
    assert 'Traceback' not in result.stderr + result.stdout


def test_moose_from_environment_or_path_fake_moose(monkeypatch, tmp_path):
    """MOOSE is found through $AIIDA_MULTISCALE_MOOSE, else `moose` on PATH; the package never guesses a checkout."""
    from aiida_multiscale.setup import default_executables

    monkeypatch.delenv('AIIDA_MULTISCALE_MOOSE', raising=False)
    monkeypatch.setenv('PATH', str(tmp_path))
    assert default_executables()['moose'] is None
    app = tmp_path / 'moose'
    app.write_text('#!/bin/sh\n')
    app.chmod(0o755)
    assert default_executables()['moose'] == str(app)
    monkeypatch.setenv('AIIDA_MULTISCALE_MOOSE', '/opt/myapp/myapp-opt')
    assert default_executables()['moose'] == '/opt/myapp/myapp-opt'


def test_missing_moose_names_the_option_and_variable(multiscale_setup, monkeypatch, tmp_path):
    from aiida_multiscale.setup import SetupError, run_setup

    monkeypatch.delenv('AIIDA_MULTISCALE_MOOSE', raising=False)
    monkeypatch.setenv('PATH', str(tmp_path))
    message = r'no executable found for moose: .*--moose PATH or set AIIDA_MULTISCALE_MOOSE'
    with pytest.raises(SetupError, match=message):
        run_setup(
            log=lambda _: None,
            computer_label='no-moose',
            workdir=str(tmp_path),
            check_executables=False,
            executables={'pw': str(multiscale_setup['codes']['pw'].filepath_executable)},
        )
    assert not _computer_exists('no-moose')

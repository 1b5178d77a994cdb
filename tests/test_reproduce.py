"""``aiida-multiscale reproduce``: the comparison rule, and the session's fast chain rerun from its own archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from aiida_multiscale.cli.reproduce import compare_macro

BIN = os.path.dirname(sys.executable)


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
def test_reproduce_fast_chain_from_archive(fast_chain, aiida_profile, tmp_path):
    """Archive the fast chain, reproduce it with the CLI: one new chain, run with caching off, same macro values."""
    from aiida import orm
    from aiida.tools.archive import create_archive

    assert fast_chain.is_finished_ok, fast_chain.exit_message
    archive = tmp_path / 'chain.aiida'
    create_archive([fast_chain], filename=str(archive))
    command = [f'{BIN}/aiida-multiscale', '-p', aiida_profile.name, 'reproduce', str(archive), '--json']
    result = subprocess.run(command, capture_output=True, text=True, timeout=2000)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report['reproduced'] is True
    (chain,) = report['chains']
    assert chain['archived_chain'] == fast_chain.uuid
    names = {row['quantity'] for row in chain['quantities']}
    assert names == set(fast_chain.outputs.macro.names)
    assert all(row['verdict'] == 'reproduced' for row in chain['quantities']), chain['quantities']
    rerun = orm.load_node(chain['reproduced_chain'])
    assert rerun.is_finished_ok and rerun.uuid != fast_chain.uuid
    # Caching off: not one calculation of the rerun was taken from the cache.
    calcs = [node for node in rerun.called_descendants if isinstance(node, orm.CalcJobNode)]
    assert calcs and not any(calc.base.caching.get_cache_source() for calc in calcs)
    youngs = fast_chain.outputs.macro.value('youngs_modulus', 'Pa')
    assert rerun.outputs.macro.value('youngs_modulus', 'Pa') == pytest.approx(youngs, rel=1e-6)


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

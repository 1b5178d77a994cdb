"""``aiida-multiscale launch dft``: bad input ends in one error line naming the problem and the fix, no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from aiida_multiscale.cli import cli


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--element', 'Ag'], "family 'multiscale/lda' has no pseudopotential for Ag"),
        (['--element', 'Si'], 'element Si has a diamond ground state'),
        (['--element', 'Al', '--pseudo-family', 'no/such'], "no pseudopotential family 'no/such'"),
        (['--element', 'Al', '--code', 'lmp@localhost'], "is for plugin 'lammps.base', not quantumespresso.pw"),
        (['--element', 'Al', '--protocol', 'ultra'], "'ultra' is not one of 'fast', 'moderate', 'precise'"),
    ],
)
def test_launch_dft_bad_input(multiscale_setup, arguments, message):
    from aiida import orm

    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = CliRunner().invoke(cli, ['launch', 'dft', *arguments])
    assert result.exit_code != 0
    assert message in result.output
    assert 'Traceback' not in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before


def test_launch_dft_help():
    result = CliRunner().invoke(cli, ['launch', 'dft', '--help'])
    assert result.exit_code == 0
    for option in ('--element', '--protocol', '--pseudo-family', '--wait', '--json'):
        assert option in result.output

"""``aiida-multiscale launch dft``: bad input ends in one error line naming the problem and the fix, no traceback."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml
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


def _protocol_file(name: str) -> dict:
    """The shipped protocol file, read here with yaml (not through the package's loader)."""
    return yaml.safe_load((resources.files('aiida_multiscale.workflows.protocols') / f'{name}.yaml').read_text())


def test_launch_dft_help_states_the_protocol_file_defaults():
    """The help names the default protocol and the choices of dft.yaml, and the fixed defaults of the options."""
    protocols = _protocol_file('dft')
    result = CliRunner().invoke(cli, ['launch', 'dft', '--help'])
    assert result.exit_code == 0
    text = ' '.join(result.output.split())  # undo click's line wrapping
    assert f'--protocol [{"|".join(protocols["protocols"])}]' in text
    assert f'[default: {protocols["default_protocol"]}]' in text
    # PBE by default, LDA where the PBE family lacks the element (issue: PBE wherever the family has the element).
    assert '[default: multiscale/pbe, or multiscale/lda where multiscale/pbe lacks the element]' in text
    assert (
        '--num-machines INTEGER RANGE Machines (nodes) per calculation (resources.num_machines). [default: protocol]'
        in text
    )


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--num-machines', '0'], "Invalid value for '--num-machines': 0 is not in the range x>=1."),
        (
            ['--max-wallclock-seconds', '-5'],
            "Invalid value for '--max-wallclock-seconds': -5 is not in the range x>=1.",
        ),
        (
            ['--protocol', 'ultra'],
            "Invalid value for '--protocol': 'ultra' is not one of 'fast', 'moderate', 'precise'.",
        ),
    ],
)
def test_launch_dft_bad_option_values_are_refused_by_the_parser(arguments, message):
    """Out-of-range option values stop at the command line (usage error, exit 2), before any profile is touched."""
    result = CliRunner().invoke(cli, ['launch', 'dft', '--element', 'Al', *arguments])
    assert result.exit_code == 2
    assert message in ' '.join(result.output.split())

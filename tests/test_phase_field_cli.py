"""``aiida-multiscale launch phase-field``: the help states the protocol file's defaults; bad values stop early."""

from __future__ import annotations

from importlib import resources

import pytest
import yaml
from click.testing import CliRunner

from aiida_multiscale.cli import cli


def _phase_field_file() -> dict:
    """phase_field.yaml, read here with yaml (not through the package's loader)."""
    return yaml.safe_load((resources.files('aiida_multiscale.workflows.protocols') / 'phase_field.yaml').read_text())


def test_help_states_the_protocol_file_defaults():
    """Each assumed anneal value and the default protocol in the help are those of phase_field.yaml."""
    protocols = _phase_field_file()
    inputs = protocols['default_inputs']
    anneal = inputs['anneal']
    result = CliRunner().invoke(cli, ['launch', 'phase-field', '--help'])
    assert result.exit_code == 0
    text = ' '.join(result.output.split())
    temperature = anneal['temperature']['homologous'] * inputs['melting_point']['value']
    expected = {
        '--gb-energy': f'{inputs["gb_energy"]["value"]:g} J/m**2',
        '--mobility-prefactor': f'{anneal["mobility_prefactor"]["value"]:g} m**4/(J*s)',
        '--activation-energy': f'{anneal["activation_energy"]["value"]:g} eV',
        '--temperature': f'{temperature:.4g} K',
        '--anneal-time': f'{anneal["anneal_time"]["value"]:g} s',
    }
    for option, default in expected.items():
        start = text.index(option + ' FLOAT')
        assert f'(default {default}, assumed (protocol file phase_field.yaml))' in text[start : start + 200], option
    assert f'Grid, domain and cycles (default: {protocols["default_protocol"]}).' in text


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['--gb-energy', '-0.5'], '= -0.5 J/m**2 must be > 0 (valid range: (0, inf) J/m**2)'),
        (['--gb-energy', '0'], 'gb_energy (GB energy sigma) = 0 J/m**2 must be > 0'),
        (['--mobility-prefactor', '0'], 'mobility_prefactor (mobility prefactor M0) = 0 m**4/(J*s) must be > 0'),
        (['--activation-energy', '-0.1'], 'activation_energy = -0.1 eV must be >= 0'),
        (['--temperature', '0'], 'temperature (the anneal temperature) = 0 K must be > 0 (valid range: (0, inf) K)'),
        (['--temperature', '-300'], 'temperature (the anneal temperature) = -300 K must be > 0'),
        (['--anneal-time', '0'], 'anneal_time (the anneal time) = 0 s must be > 0 (valid range: (0, inf) s)'),
        (['--anneal-time', '-1e-4'], 'anneal_time (the anneal time) = -0.0001 s must be > 0'),
        (['--grains', '0'], 'parameters: grains must be a positive integer, got 0'),
        (['--grains', '1'], 'parameters: grains = 1 must be at least twice min_grains = 25'),
        (['--temperature', '1000'], 'temperature = 1000 K is at or above the melting point 933.5 K'),
        (['--initial-grain-size', '1e-9'], 'initial_grain_size = 1e-09 m is below 1e-08 m'),
        (['--initial-grain-size', '0'], 'initial_grain_size (the starting mean grain size d0) = 0 m must be > 0'),
        (['--realisations', '0'], 'realisations must be a positive integer'),
        (['--gb-energy', 'nan'], "quantity 'gb_energy': value must be a finite real number, got nan"),
        (['--temperature', 'inf'], "quantity 'temperature': value must be a finite real number, got inf"),
    ],
)
def test_out_of_range_values_stop_before_submission(codes, arguments, message):
    """Each out-of-range value: one error line with the quantity, its value and the valid range; nothing submitted."""
    from aiida import orm

    before = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = CliRunner().invoke(cli, ['launch', 'phase-field', '--protocol', 'fast', '--dry-run', *arguments])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('Error: ') and message in lines[0], result.output
    assert 'Traceback' not in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == before

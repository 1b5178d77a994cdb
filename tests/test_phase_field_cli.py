"""``aiida-multiscale launch phase-field``: the help states the protocol file's defaults; bad values stop early."""

from __future__ import annotations

from importlib import resources

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

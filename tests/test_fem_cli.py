"""``aiida-multiscale launch fem``: errors as one line before submission, and a real run through the daemon."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from references import youngs_bounds

from aiida_multiscale.cli import cli
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData


@pytest.fixture
def microstructure(aiida_profile):
    ids = np.zeros((8, 8), int)
    ids[:, 4:] = 1
    ids[4:, :2] = 2
    return MicrostructureData(
        grain_ids=ids, pixel_size=1e-7, euler_angles=[[0, 0, 0], [30, 40, 50], [90, 54.7, 45]]
    ).store()


def _elastic(c11=108.2, c12=61.3, c44=28.5):
    return HandoffData(
        {
            name: {'value': value, 'unit': 'GPa', 'std': 1.0, 'note': 'test'}
            for name, value in (('c11', c11), ('c12', c12), ('c44', c44))
        },
        producer='test',
        from_scale='dft',
        to_scale='fem',
    ).store()


@pytest.mark.parametrize(
    ('extra', 'message'),
    [
        ([], 'elastic constants missing'),
        (['--c11', '100', '--c12', '50'], 'elastic constants missing'),
        (['--c11', '50', '--c12', '60', '--c44', '20'], 'C11 - C12 = -10 must be > 0'),
        (['--c11', '100', '--c12', '50', '--c44', '30', '--applied-strain', '0.3'], 'applied_strain = 0.3'),
    ],
)
def test_errors_before_submission(codes, microstructure, extra, message):
    result = CliRunner().invoke(cli, ['launch', 'fem', '--microstructure', str(microstructure.pk), *extra])
    assert result.exit_code == 1
    assert message in result.output
    assert 'Traceback' not in result.output


def test_element_adds_crystal_plasticity_dry_run(codes, microstructure):
    """--element Al fills the crystal-plasticity inputs with Al's stored assumptions; Fe has none: one line, no run."""
    from aiida import orm

    args = ['launch', 'fem', '--microstructure', str(microstructure.pk), '--dft', str(_elastic().pk), '--dry-run']
    count = orm.QueryBuilder().append(orm.ProcessNode).count()
    result = CliRunner().invoke(cli, [*args, '--element', 'Al'])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])['process_label'] == 'FemWorkChain'
    result = CliRunner().invoke(cli, [*args, '--element', 'Fe'])
    assert result.exit_code == 1 and "no stored crystal-plasticity assumptions for 'Fe'" in result.output
    assert 'Traceback' not in result.output
    assert orm.QueryBuilder().append(orm.ProcessNode).count() == count  # nothing submitted


def test_wrong_node_types(codes, microstructure):
    elastic = _elastic()
    result = CliRunner().invoke(cli, ['launch', 'fem', '--microstructure', str(elastic.pk), '--dft', str(elastic.pk)])
    assert result.exit_code == 1 and '--microstructure' in result.output and 'MicrostructureData' in result.output
    result = CliRunner().invoke(
        cli, ['launch', 'fem', '--microstructure', str(microstructure.pk), '--dft', str(microstructure.pk)]
    )
    assert result.exit_code == 1 and '--dft' in result.output and 'HandoffData' in result.output


@pytest.mark.daemon
@pytest.mark.real_code
def test_launch_wait_json_through_daemon(daemon_client, codes, microstructure):
    if not daemon_client.is_daemon_running:
        daemon_client.start_daemon(number_workers=1)
    elastic = _elastic()
    result = CliRunner().invoke(
        cli, ['launch', 'fem', '--microstructure', str(microstructure.pk), '--dft', str(elastic.pk),
              '--protocol', 'fast', '--wait', '--json'],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary['process_label'] == 'FemWorkChain' and summary['exit_status'] == 0
    quantities = summary['outputs']['mechanics']
    assert quantities['youngs_modulus']['unit'] == 'Pa'
    # the bounds from the test's own Voigt/Reuss (tests/references.py), in GPa as the Cij given
    voigt, reuss = youngs_bounds(108.2, 61.3, 28.5, microstructure.euler_angles, microstructure.area_fractions)
    assert reuss < quantities['youngs_modulus']['value'] / 1e9 < voigt
    assert quantities['youngs_modulus_voigt']['value'] / 1e9 == pytest.approx(voigt, rel=1e-9)
    assert quantities['youngs_modulus_reuss']['value'] / 1e9 == pytest.approx(reuss, rel=1e-9)
    assert summary['outputs']['stress_map']['type'] == 'SinglefileData'

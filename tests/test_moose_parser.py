"""Tests of ``MooseParser`` on outputs recorded from the real MOOSE (tests/fixtures/moose/<case>/, see record.py)."""

from __future__ import annotations

import io
import pathlib
import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.parsers.moose import MooseParser, parse_csv, parse_log

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'moose'


@pytest.fixture
def parse(aiida_localhost):
    """Build a CalcJobNode with ``retrieved`` from a fixture folder and parse it: returns (results, exit status)."""

    def _parse(folder, options=None, scheduler_exit=None, files=None):
        node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:multiscale.moose')
        node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
        node.set_option('output_filename', 'moose.log')
        node.set_option('input_filename', 'moose.i')
        for key, value in (options or {}).items():
            node.set_option(key, value)
        for label, file_node in (files or {}).items():
            node.base.links.add_incoming(file_node.store(), link_type=LinkType.INPUT_CALC, link_label=f'files__{label}')
        node.store()
        retrieved = orm.FolderData()
        retrieved.base.repository.put_object_from_tree(str(folder))
        retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
        retrieved.store()
        if scheduler_exit is not None:
            node.set_exit_status(scheduler_exit)
            node.set_exit_message('scheduler says: out of walltime')
        results, calcfunction = MooseParser.parse_from_node(node, store_provenance=False)
        return results, calcfunction.exit_status, calcfunction.exit_message

    return _parse


@pytest.mark.parametrize(
    ('case', 'exit_status'),
    [
        ('success', 0),
        ('input_error', 310),
        ('missing_csv', 320),
        ('empty_csv', 321),
        ('missing_exodus', 322),
        ('not_converged', 400),
        ('dtmin', 401),
        ('no_log', 300),
        ('killed', 311),
    ],
)
def test_exit_codes(parse, case, exit_status):
    _, status, _ = parse(FIXTURES / case)
    assert status == exit_status


def test_success_outputs(parse):
    results, status, _ = parse(FIXTURES / 'success')
    assert status == 0
    series = results['postprocessors']
    np.testing.assert_allclose(series.get_array('time'), [0.0, 0.1, 0.2, 0.3])
    average = series.get_array('average')
    # u heats from 0 towards the steady mean 1/2 monotonically (diffusion with u = 0 and u = 1 on the sides)
    assert average[0] == 0.0 and np.all(np.diff(average) > 0) and 0.4 < average[-1] < 0.5
    parameters = results['output_parameters'].get_dict()
    assert parameters['postprocessors'] == {'average': pytest.approx(average[-1])}
    assert parameters['time'] == pytest.approx(0.3)
    assert parameters['num_time_steps'] == 3
    assert parameters['num_failed_solves'] == 0
    assert parameters['csv_file'] == 'out.csv' and parameters['exodus_file'] == 'out.e'
    with results['exodus'].open(mode='rb') as handle:
        assert handle.read(3) == b'CDF'  # netCDF-3 classic, what libMesh writes and reads


def test_input_error_message(parse):
    _, status, message = parse(FIXTURES / 'input_error')
    assert status == 310
    assert "unused parameter 'Executioner/no_such_parameter'" in message
    assert 'Stack frames' not in message


def test_dtmin_keeps_last_state(parse):
    """A failed transient still hands over its Exodus file: the restart handler starts from it."""
    results, status, message = parse(FIXTURES / 'dtmin')
    assert status == 401
    assert 'time 0.05' in message and 'dtmin' in message
    assert 'exodus' in results


def test_killed_run_is_not_success(parse):
    """A run killed mid-way has a valid CSV and Exodus file up to its last step: only the signal tells."""
    results, status, message = parse(FIXTURES / 'killed')
    assert status == 311
    assert 'Killed' in message and 'time 0.09' in message
    assert 'exodus' in results and results['output_parameters']['time'] > 0


def test_scheduler_exit_code_kept_when_output_missing(parse):
    _, status, message = parse(FIXTURES / 'no_log', scheduler_exit=120)
    assert status == 120
    assert 'walltime' in message


def test_scheduler_exit_code_kept_when_outputs_incomplete(parse):
    _, status, _ = parse(FIXTURES / 'missing_exodus', scheduler_exit=120)
    assert status == 120


def test_optional_outputs(parse):
    _, status, _ = parse(FIXTURES / 'missing_exodus', options={'require_exodus': False})
    assert status == 0
    _, status, _ = parse(FIXTURES / 'missing_csv', options={'require_csv': False})
    assert status == 0


def test_auxiliary_inputs_are_not_outputs(parse, tmp_path):
    """A seed CSV / restart Exodus given as input is retrieved by the globs but must not be taken for the output."""
    folder = tmp_path / 'run'
    shutil.copytree(FIXTURES / 'missing_exodus', folder)
    (folder / 'a.csv').write_text('time,x\n0,1\n')
    (folder / 'a.e').write_bytes(b'CDF-not-an-output')
    files = {
        'seed': orm.SinglefileData(io.BytesIO(b'time,x\n0,1\n'), filename='a.csv'),
        'restart': orm.SinglefileData(io.BytesIO(b'CDF'), filename='a.e'),
    }
    results, status, _ = parse(folder, files=files)
    assert status == 322
    assert results['output_parameters']['csv_file'] == 'out.csv'


@pytest.mark.unit
def test_parse_csv_and_log_helpers():
    series = parse_csv('time,a,b\n0,1,2\n1,3,4\n')
    np.testing.assert_allclose(series['b'], [2, 4])
    assert parse_csv('time,a\n')['a'].size == 0
    log = parse_log('\x1b[31m\n*** ERROR ***\nbad thing\n\nStack frames: 3\n0: x\x1b[39m')
    assert log['error'] == 'bad thing'

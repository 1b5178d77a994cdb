"""Tests of ``MooseParser`` on outputs recorded from the real MOOSE (tests/fixtures/moose/<case>/, see record.py)."""

from __future__ import annotations

import io
import pathlib
import shutil

import numpy as np
import pytest
from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.parsers.moose import MooseParser, log_postprocessors, parse_csv, parse_log, root_cause

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
        ('log_only', 320),
        ('abort_hypre', 311),
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


def test_auxiliary_inputs_are_not_outputs_fake(parse, tmp_path):
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


def test_postprocessors_from_exodus_globals(parse):
    """An input that writes Exodus only (most MOOSE inputs): the postprocessors are the Exodus global variables."""
    results, status, _ = parse(FIXTURES / 'missing_csv', options={'require_csv': False})
    assert status == 0
    parameters = results['output_parameters'].get_dict()
    assert parameters['postprocessors_source'] == 'exodus'
    assert parameters['csv_file'] is None and parameters['exodus_file'] == 'out.e'
    assert parameters['time'] == pytest.approx(0.3) and parameters['num_time_steps'] == 3
    # the same input as `success`, which also wrote the CSV: the Exodus globals hold the same numbers
    csv = parse_csv((FIXTURES / 'success' / 'out.csv').read_text())
    series = results['postprocessors']
    np.testing.assert_allclose(series.get_array('time'), csv['time'], rtol=1e-12)
    np.testing.assert_allclose(series.get_array('average'), csv['average'], rtol=1e-12)
    assert parameters['postprocessors'] == {'average': pytest.approx(csv['average'][-1], rel=1e-12)}


def test_missing_csv_still_fills_postprocessors(parse):
    """With require_csv (the default) a missing CSV is still exit 320, but the values are there for the caller."""
    results, status, message = parse(FIXTURES / 'missing_csv')
    assert status == 320 and 'require_csv = False' in message
    assert results['output_parameters']['postprocessors_source'] == 'exodus'
    assert results['output_parameters']['postprocessors']['average'] > 0


def test_postprocessors_from_log_tables(parse):
    """Neither CSV nor Exodus: the series is put together from every table the console printed (15 rows each)."""
    results, status, _ = parse(FIXTURES / 'log_only', options={'require_csv': False, 'require_exodus': False})
    assert status == 0
    parameters = results['output_parameters'].get_dict()
    assert parameters['postprocessors_source'] == 'log'
    assert any('seven significant digits' in warning for warning in parameters['warnings'])
    assert parameters['time'] == pytest.approx(0.2) and parameters['num_time_steps'] == 20
    time = results['postprocessors'].get_array('time')
    np.testing.assert_allclose(time, np.arange(21) * 0.01, atol=1e-12)  # all 21 rows, not the last 15 of the table
    average = results['postprocessors'].get_array('average')
    assert average[0] == 0.0 and np.all(np.diff(average) > 0)
    assert parameters['postprocessors'] == {'average': 0.4440607}


def test_abort_carries_root_cause(parse):
    """A solver missing from the build: PETSc aborts at the first solve, and the exit message says so."""
    results, status, message = parse(FIXTURES / 'abort_hypre')
    assert status == 311
    assert 'Aborted' in message and 'time 0.1' in message
    assert 'Unable to find requested PC type hypre' in message
    # the initial state was written before the abort: kept, and its time is known
    assert results['output_parameters']['time'] == 0.0 and 'exodus' in results


def test_abort_without_signal_report_fake(parse, tmp_path):
    """The recorded abort without the job script's report of the signal: the log's `terminate called` tells it."""
    folder = tmp_path / 'run'
    shutil.copytree(FIXTURES / 'abort_hypre', folder)
    (folder / '_scheduler-stderr.txt').unlink()
    _, status, message = parse(folder)
    assert status == 311 and 'Unable to find requested PC type hypre' in message


@pytest.mark.unit
def test_root_cause_recorded_and_hand_cut_logs_fake():
    log = (FIXTURES / 'abort_hypre' / 'moose.log').read_text()
    cause = root_cause(log)
    assert cause.startswith('PETSc error: Unable to find requested PC type hypre (Unknown type.')
    assert root_cause((FIXTURES / 'success' / 'moose.log').read_text()) is None
    assert "unused parameter 'Executioner/no_such_parameter'" in root_cause(
        (FIXTURES / 'input_error' / 'moose.log').read_text()
    )
    text = (
        'Time Step 1\nlibMesh terminating:\nZero pivot in LU factorization\n'
        "terminate called after throwing an instance of 'libMesh::LogicError'\n  what():  other\n"
    )
    assert root_cause(text) == 'libMesh error: Zero pivot in LU factorization'
    # MUMPS asked for (a solver this build lacks): PETSc's generic line is a link, the specific one comes second
    text = (
        '[0]PETSC ERROR: --------------------- Error Message ---------------------------------------\n'
        '[0]PETSC ERROR: See https://petsc.org/release/overview/linear_solve_table/ for possible LU and Cholesky '
        'solvers\n[0]PETSC ERROR: Could not locate solver type mumps for factorization type LU and matrix type '
        'seqaij. Perhaps you must ./configure with --download-mumps\n'
        '[0]PETSC ERROR: See https://petsc.org/release/faq/ for trouble shooting.\n'
    )
    assert root_cause(text).startswith('PETSc error: Could not locate solver type mumps for factorization type LU')
    text = "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n"
    assert root_cause(text) == 'std::bad_alloc: std::bad_alloc'
    assert parse_log(text)['aborted']


@pytest.mark.unit
def test_log_postprocessors_merges_split_and_repeated_tables_fake():
    table = (
        'Postprocessor Values:\n+------+-----+\n| time | a   |\n+------+-----+\n| 0 | 1 |\n| 1 | 2 |\n+------+-----+\n'
        '+------+-----+\n| time | b   |\n+------+-----+\n| 0 | 5 |\n| 1 | 6 |\n+------+-----+\n\n'
        # a later table (the step repeated with a smaller dt) wins for the same time
        'Postprocessor Values:\n+------+-----+-----+\n| time | a   | b   |\n+------+-----+-----+\n'
        ':      :     :     :\n| 1 | 3 | 7 |\n+------+-----+-----+\n'
    )
    series = log_postprocessors(table)
    assert list(series) == ['time', 'a', 'b']
    np.testing.assert_array_equal(series['time'], [0, 1])
    np.testing.assert_array_equal(series['a'], [1, 3])
    np.testing.assert_array_equal(series['b'], [5, 7])
    assert log_postprocessors('no tables here') == {}

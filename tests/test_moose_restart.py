"""Restarts of the MOOSE rungs (MooseBaseWorkChain): MOOSE checkpoint/recover through a real Slurm kill, the handlers.

The slow test lets Slurm kill a one-cycle PhaseFieldWorkChain at a 1-minute time limit and checks that its
MooseBaseWorkChain continues it from its MOOSE checkpoint (``--recover`` in a new MooseCalculation whose
``parent_folder`` is the killed run's remote folder) to exactly the postprocessor values of an uninterrupted run of the
same input.  The first job is frozen (SIGSTOP) right after its first checkpoint, so that the kill does not depend on
how fast the machine is.  The fast tests check the decisions (recover, more time, give up) and the handlers on mock
nodes and a mock work chain, the calculation's command line and copy list in a dry run, its validation, and the
parser's checkpoint report and CSV de-duplication on fake retrieved files.
"""

from __future__ import annotations

import asyncio
import io
import os
import pathlib
import signal
import threading
import time
import types

import numpy as np
import pytest
from aiida import orm
from aiida.common import AttributeDict
from aiida.common.links import LinkType
from aiida.engine import run_get_node

from aiida_multiscale.calculations.moose import CHECKPOINT_DIRECTORY, MooseCalculation, checkpoint_input
from aiida_multiscale.engines.moose.hit import render_hit
from aiida_multiscale.parsers.moose import MooseParser, latest_checkpoint, parse_csv
from aiida_multiscale.workflows.base.moose import (
    MooseBaseWorkChain,
    max_iterations_with_walltime_restarts,
    rung_exit_code,
    walltime_restart,
)
from aiida_multiscale.workflows.fem import FemWorkChain
from aiida_multiscale.workflows.phase_field import PhaseFieldWorkChain

FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'moose'
OUT_OF_WALLTIME = 120


# ---------------------------------------------------------------------------------------------------------------------
# Decisions and handlers on mock nodes
# ---------------------------------------------------------------------------------------------------------------------
class _MockNode:
    """What the handlers read of a failed MooseCalculation: options, exit status, inputs, outputs."""

    def __init__(
        self,
        walltime=3600,
        checkpoint=None,
        parameters=True,
        exit_status=OUT_OF_WALLTIME,
        recover=False,
        dt=None,
        input_text='[Executioner]\n  type = Transient\n  dtmin = 0.01\n  [TimeStepper]\n    dt = 8.0\n  []\n[]\n',
    ):
        self.pk = 42
        inputs = {'input_file': orm.Str(input_text)}
        if recover:
            inputs['recover'] = orm.Bool(True)
        self.inputs = AttributeDict(inputs)
        self.process_label = 'MooseCalculation'
        self.exit_status = exit_status
        self.exit_message = 'killed'
        self.is_failed = exit_status != 0
        self._walltime = walltime
        outputs = {'remote_folder': types.SimpleNamespace(label='remote folder of the killed run')}
        if parameters:
            values = {'checkpoint': checkpoint, 'postprocessors': {} if dt is None else {'dt': dt}}
            outputs['output_parameters'] = types.SimpleNamespace(get_dict=lambda: values)
        self.outputs = AttributeDict(outputs)

    def get_option(self, name):
        return {'max_wallclock_seconds': self._walltime}.get(name)


NEW = {'time_step': 20, 'time': 1039.31, 'new': True}
OLD = {'time_step': 20, 'time': 1039.31, 'new': False}


@pytest.mark.parametrize(
    ('node', 'kwargs', 'action', 'walltime', 'says'),
    [
        (lambda: _MockNode(checkpoint=NEW), {}, 'recover', 3600, 'recovering from its checkpoint at time step 20'),
        (lambda: _MockNode(checkpoint=OLD), {}, 'recover', 7200, 'wrote no new checkpoint'),
        (lambda: _MockNode(), {}, 'rerun', 7200, 'no checkpoint to continue from'),
        (lambda: _MockNode(parameters=False), {}, 'rerun', 7200, 'running again from the start'),
        (
            lambda: _MockNode(checkpoint=NEW),
            {'can_recover': False},
            'rerun',
            7200,
            'max_wallclock_seconds 3600 -> 7200',
        ),
        (lambda: _MockNode(walltime=60000), {}, 'rerun', 86400, '60000 -> 86400'),
        (lambda: _MockNode(walltime=86400, checkpoint=NEW), {}, 'recover', 86400, 'same walltime'),
        (lambda: _MockNode(walltime=86400), {}, 'give_up', None, 'already at max_wallclock_seconds_limit = 86400'),
        (lambda: _MockNode(walltime=86400, checkpoint=OLD), {}, 'give_up', None, 'made no new checkpoint'),
        (lambda: _MockNode(walltime=None), {}, 'give_up', None, 'no max_wallclock_seconds'),
    ],
)
def test_walltime_decision_mock(node, kwargs, action, walltime, says):
    """Recover when the run wrote a checkpoint, double the time when it made no progress, give up at the limit."""
    decision = walltime_restart(node(), **{'limit': 86400, 'can_recover': True, **kwargs})
    assert decision.action == action
    assert decision.max_wallclock_seconds == walltime
    assert says in decision.message
    assert (decision.checkpoint is not None) == (action == 'recover')


def _mock_workchain(inputs, **input_ports):
    """An object with what the handlers of MooseBaseWorkChain touch: ctx, inputs, report, exit codes, its helpers."""
    reports = []
    extras = types.SimpleNamespace(get=lambda *_: [], set=lambda *_: None)
    workchain = types.SimpleNamespace(
        ctx=AttributeDict({'inputs': inputs}),
        inputs=AttributeDict({'max_wallclock_seconds_limit': orm.Int(86400), **input_ports}),
        report=reports.append,
        reports=reports,
        exit_codes=MooseBaseWorkChain.exit_codes,
        node=types.SimpleNamespace(base=types.SimpleNamespace(extras=extras)),
        _considered_handlers_extra=MooseBaseWorkChain._considered_handlers_extra,
    )
    for name in ('_resubmit', '_from_start', '_set_checkpoint_interval'):
        setattr(workchain, name, types.MethodType(getattr(MooseBaseWorkChain, name), workchain))
    return workchain


def _handle(handler, workchain, node):
    """Call a process handler as BaseRestartWorkChain.inspect_process does, on the mock work chain."""
    return handler.__get__(workchain, type(workchain))(node)


def _calc_inputs(walltime=1800, checkpoint=True):
    inputs = AttributeDict({'metadata': {'options': {'max_wallclock_seconds': walltime}}})
    if checkpoint:
        inputs.checkpoint_interval = orm.Float(450.0)
    return inputs


def test_handler_recovers_mock(aiida_profile):
    """A new checkpoint: the next run recovers from the killed run's remote folder, same walltime, and says so."""
    workchain = _mock_workchain(_calc_inputs())
    node = _MockNode(walltime=1800, checkpoint=NEW)
    report = _handle(MooseBaseWorkChain.handle_out_of_walltime, workchain, node)
    assert report.do_break and report.exit_code.status == 0
    inputs = workchain.ctx.inputs
    assert inputs.parent_folder is node.outputs.remote_folder and inputs.recover.value is True
    assert inputs.metadata['options']['max_wallclock_seconds'] == 1800
    assert (
        'MooseCalculation<42> was killed at its walltime: recovering from its checkpoint at time step 20'
        in (workchain.reports[-1])
    )


def test_handler_more_time_then_gives_up_mock(aiida_profile):
    """No checkpoint: rerun with twice the walltime, the default checkpoint interval following; at the limit: 320."""
    workchain = _mock_workchain(_calc_inputs())
    report = _handle(MooseBaseWorkChain.handle_out_of_walltime, workchain, _MockNode(walltime=1800))
    assert report.exit_code.status == 0
    assert workchain.ctx.inputs.metadata['options']['max_wallclock_seconds'] == 3600
    assert 'recover' not in workchain.ctx.inputs
    assert workchain.ctx.inputs.checkpoint_interval.value == 900  # a quarter of the walltime
    report = _handle(MooseBaseWorkChain.handle_out_of_walltime, workchain, _MockNode(walltime=86400))
    assert report.exit_code.status == MooseBaseWorkChain.exit_codes.ERROR_OUT_OF_WALLTIME.status == 320
    assert report.exit_code.message.startswith('MooseCalculation<42> was killed at its walltime of 86400 s')
    # an explicit interval stays
    workchain = _mock_workchain(_calc_inputs(), checkpoint_interval=orm.Float(100.0))
    _handle(MooseBaseWorkChain.handle_out_of_walltime, workchain, _MockNode(walltime=1800))
    assert workchain.ctx.inputs.checkpoint_interval.value == 100


def test_handler_without_checkpoints_more_time_only_mock(aiida_profile):
    """A run without checkpoints (FEM, a steady solve) is rerun with twice the time, never recovered."""
    workchain = _mock_workchain(_calc_inputs(checkpoint=False), checkpoint_interval=orm.Float(0))
    report = _handle(MooseBaseWorkChain.handle_out_of_walltime, workchain, _MockNode(walltime=1800, checkpoint=NEW))
    assert report.do_break and report.exit_code.status == 0
    assert workchain.ctx.inputs.metadata['options']['max_wallclock_seconds'] == 3600
    assert 'parent_folder' not in workchain.ctx.inputs and 'checkpoint_interval' not in workchain.ctx.inputs
    assert 'running again from the start with max_wallclock_seconds 1800 -> 3600' in workchain.reports[-1]


def test_handlers_leave_other_failures_mock(aiida_profile):
    """Each handler only answers its own failures; what none can fix is final (310) with the calculation's code."""
    workchain = _mock_workchain(_calc_inputs())
    not_converged = _MockNode(exit_status=MooseCalculation.exit_codes.ERROR_NOT_CONVERGED.status)
    assert _handle(MooseBaseWorkChain.handle_out_of_walltime, workchain, not_converged) is None
    # not recovered: a real input error, not the checkpoint's fault
    assert _handle(MooseBaseWorkChain.handle_failed_recovery, workchain, _MockNode(exit_status=310)) is None
    report = _handle(MooseBaseWorkChain.handle_unrecoverable, workchain, _MockNode(exit_status=310))
    assert report.exit_code.status == MooseBaseWorkChain.exit_codes.ERROR_MOOSE_FAILED.status == 310
    assert 'MooseCalculation<42> failed' in report.exit_code.message and '[310]' in report.exit_code.message
    assert _handle(MooseBaseWorkChain.handle_unrecoverable, workchain, _MockNode(exit_status=0)) is None


def test_failed_recovery_mock(aiida_profile):
    """A recovered run that fails (310/311) is rerun from its start with more time; at the limit: exit 321."""
    handler = MooseBaseWorkChain.handle_failed_recovery
    workchain = _mock_workchain(_calc_inputs())
    inputs = workchain.ctx.inputs
    inputs.parent_folder, inputs.recover = 'remote folder', orm.Bool(True)
    report = _handle(handler, workchain, _MockNode(walltime=1800, exit_status=311, recover=True))
    assert report.do_break and report.exit_code.status == 0
    assert 'recover' not in inputs and 'parent_folder' not in inputs
    assert inputs.metadata['options']['max_wallclock_seconds'] == 3600
    assert 'could not continue from its checkpoint [311]' in workchain.reports[-1]
    report = _handle(handler, workchain, _MockNode(walltime=86400, exit_status=310, recover=True))
    assert report.exit_code.status == MooseBaseWorkChain.exit_codes.ERROR_RECOVERY_FAILED.status == 321
    assert report.exit_code.message.startswith('MooseCalculation<42> could not continue from its checkpoint')


def test_not_converged_cuts_the_time_step_mock(aiida_profile):
    """Not converged: the input runs again from its start with dt (and dtmin) / 10 as command-line overrides."""
    handler = MooseBaseWorkChain.handle_not_converged
    workchain = _mock_workchain(_calc_inputs())
    workchain.ctx.inputs.recover = orm.Bool(True)
    status = MooseCalculation.exit_codes.ERROR_NOT_CONVERGED.status
    report = _handle(handler, workchain, _MockNode(exit_status=status, dt=5.0))
    assert report.do_break and report.exit_code.status == 0
    assert workchain.ctx.inputs.cmdline.get_list() == ['Executioner/TimeStepper/dt=0.5', 'Executioner/dtmin=0.001']
    assert 'recover' not in workchain.ctx.inputs
    # again, without a dt postprocessor: from the last cut, replacing the earlier overrides
    _handle(handler, workchain, _MockNode(exit_status=status))
    assert workchain.ctx.inputs.cmdline.get_list() == ['Executioner/TimeStepper/dt=0.05', 'Executioner/dtmin=0.0001']
    # a first failure without a dt postprocessor and without a time stepper: the input's Executioner/dt
    workchain = _mock_workchain(_calc_inputs())
    plain = _MockNode(exit_status=status, input_text='[Executioner]\n  type = Transient\n  dt = 2\n[]\n')
    _handle(handler, workchain, plain)
    assert workchain.ctx.inputs.cmdline.get_list() == ['Executioner/dt=0.2']
    # a steady solve has no time step: left to handle_unrecoverable
    steady = _MockNode(exit_status=status, input_text='[Executioner]\n  type = Steady\n[]\n')
    assert _handle(handler, _mock_workchain(_calc_inputs()), steady) is None


def test_rung_exit_codes_and_deprecated_walltime_restarts_mock(aiida_profile):
    """The rungs end with the base chain's 320/321 under the same number; walltime_restarts maps onto max_iterations."""
    base = types.SimpleNamespace(
        pk=7, exit_status=320, exit_message='MooseCalculation<42> was killed at its walltime of 86400 s'
    )
    exit_code = rung_exit_code(PhaseFieldWorkChain.exit_codes, base, cycle=1)
    assert exit_code.status == 320
    assert exit_code.message == 'Phase-field rung, cycle 1: MooseCalculation<42> was killed at its walltime of 86400 s'
    assert rung_exit_code(FemWorkChain.exit_codes, base).message.startswith('FEM rung: MooseCalculation<42>')
    base.exit_status, base.exit_message = 401, 'too many iterations'
    exit_code = rung_exit_code(FemWorkChain.exit_codes, base)
    assert exit_code.status == FemWorkChain.exit_codes.ERROR_MOOSE_FAILED.status == 310
    assert '[401] too many iterations' in exit_code.message
    inputs = AttributeDict({'max_iterations': orm.Int(3)})
    assert max_iterations_with_walltime_restarts(inputs) == 3
    inputs.walltime_restarts = orm.Int(4)
    assert max_iterations_with_walltime_restarts(inputs) == 5
    for rung in (PhaseFieldWorkChain, FemWorkChain):
        assert 'walltime_restarts' in rung.spec().inputs and 'max_wallclock_seconds_limit' in rung.spec().inputs
        assert 'Deprecated: use max_iterations' in rung.spec().inputs['walltime_restarts'].help


def test_recovery_from_broken_checkpoint_then_rerun_mock(codes):
    """Real MOOSE: a checkpoint cut short makes ``--recover`` fail; the handler's rerun gives the uninterrupted result.

    A Slurm kill while MOOSE writes a checkpoint leaves its newest restart data short.  Here the newest ``data`` file
    of a finished run's checkpoint is truncated to nothing, the recovery from it fails (MOOSE stops with a
    ``*** ERROR ***`` reading it: exit 310), and the MooseBaseWorkChain handler (on a mock work chain) turns the failed
    node into a rerun from the start without ``--recover``, which must reproduce the first run's postprocessor exactly.
    """
    interval = orm.Float(1e-6)  # a checkpoint after every time step
    builder = _calc_builder(codes['moose'], checkpoint_interval=interval)
    builder.input_file = orm.Str(_heat_input(20))
    first, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    step = first['output_parameters']['checkpoint']['time_step']
    data = (
        pathlib.Path(node.outputs.remote_folder.get_remote_path()) / CHECKPOINT_DIRECTORY / f'{step:04d}-restart-0.rd'
    )
    (data / 'data').write_bytes(b'')

    recover = _calc_builder(
        codes['moose'], checkpoint_interval=interval, parent_folder=node.outputs.remote_folder, recover=orm.Bool(True)
    )
    recover.input_file = orm.Str(_heat_input(20))
    _, failed = run_get_node(recover)
    assert failed.exit_status in (310, 311), f'{failed.exit_status}: {failed.exit_message}'

    inputs = AttributeDict({key: value for key, value in recover.items() if key != 'metadata'})
    inputs.metadata = {'options': dict(recover.metadata.options)}
    workchain = _mock_workchain(inputs, checkpoint_interval=interval)
    report = _handle(MooseBaseWorkChain.handle_failed_recovery, workchain, failed)
    assert report is not None and report.exit_code.status == 0, workchain.reports
    inputs = workchain.ctx.inputs
    assert 'recover' not in inputs and 'parent_folder' not in inputs
    assert inputs.metadata['options']['max_wallclock_seconds'] == 600
    again, rerun = run_get_node(MooseCalculation, **inputs)
    assert rerun.is_finished_ok, rerun.exit_message
    assert rerun.outputs.output_parameters['first_time_step'] == 1  # from the start, not from a checkpoint
    final = first['output_parameters']['postprocessors']['mean']
    assert again['output_parameters']['postprocessors']['mean'] == pytest.approx(final, rel=1e-10)


# ---------------------------------------------------------------------------------------------------------------------
# Parser and calculation
# ---------------------------------------------------------------------------------------------------------------------
def test_parser_names_headerless_csv_from_the_log_fake(aiida_localhost, tmp_path):
    """A recovered run whose inherited CSV was cut short by the kill: rows without a header, named from the log.

    Seen in CI: Slurm killed MOOSE while it rewrote its CSV (0 bytes left), and the recovered run, which restores the
    table's state from the checkpoint, appended its rows without a header.  The parser names the columns from the
    last ``Postprocessor Values`` tables of the log (MOOSE splits them, each starting with ``time``), warns that the
    rows before the recovery are missing, and drops a row cut short.
    """
    rule = '+----------------+----------------+'
    log = '\n'.join([
        'Time Step 80, time = 2000, dt = 25', ' Solve Converged!',
        'Time Step 81, time = 2025, dt = 25', ' Solve Converged!', '',
        'Postprocessor Values:',
        rule, '| time           | area_eta0      |', rule,
        ':                :                :', '|   2.025000e+03 |   3.0e+05      |', rule,
        rule, '| time           | dt             |', rule,
        '|   2.025000e+03 |   2.5e+01      |', rule, '', '',
    ])  # fmt: skip
    node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:multiscale.moose')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.set_option('output_filename', 'moose.log')
    node.set_option('require_exodus', False)
    node.store()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_filelike(io.BytesIO(log.encode()), 'moose.log')
    rows = '2000,3.1e5,25\n2025,3.0e5,25\n2050,2.9e5\n'  # the last row cut short
    retrieved.base.repository.put_object_from_filelike(io.BytesIO(rows.encode()), 'phase_field.csv')
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved.store()
    results, process = MooseParser.parse_from_node(node, store_provenance=False)
    assert process.exit_status == 0, process.exit_message
    parameters = results['output_parameters'].get_dict()
    assert parameters['csv_file'] == 'phase_field.csv'
    assert parameters['postprocessors'] == {'area_eta0': 3.0e5, 'dt': 25.0}
    np.testing.assert_array_equal(results['postprocessors'].get_array('time'), [2000, 2025])
    assert any('no header line' in warning and 'time step 80' in warning for warning in parameters['warnings'])
    # without the log's table there is nothing to name the columns with: still the missing-CSV exit code
    retrieved_plain = orm.FolderData()
    plain_log = io.BytesIO(b'Time Step 1, time = 1, dt = 1\n')
    retrieved_plain.base.repository.put_object_from_filelike(plain_log, 'moose.log')
    retrieved_plain.base.repository.put_object_from_filelike(io.BytesIO(rows.encode()), 'phase_field.csv')
    other = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:multiscale.moose')
    other.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    other.set_option('output_filename', 'moose.log')
    other.store()
    retrieved_plain.base.links.add_incoming(other, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved_plain.store()
    _, process = MooseParser.parse_from_node(other, store_provenance=False)
    assert process.exit_status == MooseCalculation.exit_codes.ERROR_MISSING_CSV.status


def test_parse_csv_recovered_rows_and_checkpoint_names_fake():
    """Rows the killed run wrote after its checkpoint come again from the recovered run: the later ones are kept."""
    text = 'time,a\n0,0\n1,1\n2,2\n3,3.5\n2,2\n3,3\n4,4\n'
    series = parse_csv(text)
    np.testing.assert_array_equal(series['time'], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(series['a'], [0, 1, 2, 3, 4])
    assert latest_checkpoint(['0017-restart-0.rd', '0020-restart-0.rd', 'foo', '0030-mesh.cpa.gz']) == 20
    assert latest_checkpoint(['header']) is None


def test_parser_reports_checkpoint_fake(aiida_localhost, tmp_path):
    """The restart headers fetched to the temporary folder give the newest checkpoint; the log gives its time."""
    node = orm.CalcJobNode(computer=aiida_localhost, process_type='aiida.calculations:multiscale.moose')
    node.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    node.set_option('output_filename', 'moose.log')
    node.store()
    retrieved = orm.FolderData()
    retrieved.base.repository.put_object_from_tree(str(FIXTURES / 'success'))
    retrieved.base.links.add_incoming(node, link_type=LinkType.CREATE, link_label='retrieved')
    retrieved.store()
    for step in (1, 2):
        (tmp_path / f'{step:04d}-restart-0.rd').mkdir()
        (tmp_path / f'{step:04d}-restart-0.rd' / 'header').write_bytes(b'x')
    results, process = MooseParser.parse_from_node(
        node, store_provenance=False, retrieved_temporary_folder=str(tmp_path)
    )
    assert process.exit_status == 0
    parameters = results['output_parameters'].get_dict()
    assert parameters['checkpoint'] == {'time_step': 2, 'time': 0.2, 'new': True}
    assert parameters['first_time_step'] == 1


def _heat_input(num_steps: int = 5) -> str:
    """Transient heat conduction with a growing source (the problem of test_slurm.py), ``num_steps`` steps."""
    return render_hit(
        {
            'Mesh': {'gen': {'type': 'GeneratedMeshGenerator', 'dim': 1, 'nx': 20}},
            'Variables': {'u': {}},
            'Kernels': {
                'dt': {'type': 'TimeDerivative', 'variable': 'u'},
                'diff': {'type': 'Diffusion', 'variable': 'u'},
                'source': {'type': 'BodyForce', 'variable': 'u', 'function': 'ramp'},
            },
            'Functions': {'ramp': {'type': 'ParsedFunction', 'expression': '1 + t'}},
            'BCs': {'ends': {'type': 'DirichletBC', 'variable': 'u', 'boundary': 'left right', 'value': 0}},
            'Executioner': {'type': 'Transient', 'num_steps': num_steps, 'dt': 1e-3, 'solve_type': 'NEWTON'},
            'Postprocessors': {'mean': {'type': 'ElementAverageValue', 'variable': 'u'}},
            'Outputs': {'csv': True, 'exodus': True, 'file_base': 'heat'},
        }
    )


def _calc_builder(code, **kwargs):
    builder = MooseCalculation.get_builder()
    builder.code = code
    builder.input_file = orm.Str(_heat_input())
    builder.metadata.options.max_wallclock_seconds = 300
    for key, value in kwargs.items():
        setattr(builder, key, value)
    return builder


def test_dry_run_recover_command_line_and_copy_list(codes, tmp_path):
    """recover: two merged inputs, --recover on the last checkpoint, checkpoints and outputs copied from the parent."""
    parent = orm.RemoteData(computer=codes['moose'].computer, remote_path=str(tmp_path)).store()
    builder = _calc_builder(
        codes['moose'], checkpoint_interval=orm.Float(5.0), parent_folder=parent, recover=orm.Bool(True)
    )
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    folder = pathlib.Path(node.dry_run_info['folder'])
    script = (folder / '_aiidasubmit.sh').read_text()
    assert f"'-i' 'moose.i' 'checkpoint.i' '--color' 'off' '--recover' '{CHECKPOINT_DIRECTORY}/LATEST'" in script
    assert (folder / 'checkpoint.i').read_text() == checkpoint_input(5.0)
    assert 'wall_time_interval = 5.0' in checkpoint_input(5.0) and 'type = Checkpoint' in checkpoint_input(5.0)
    copies = (folder / '_aiida_remote_copy_list.txt').read_text()
    for source in (CHECKPOINT_DIRECTORY, '*.csv', '*.e', '*.e-s*'):
        assert f'would have copied {tmp_path / source} to ' in copies


def test_recover_validation(codes, aiida_localhost, tmp_path):
    """recover and parent_folder come together, need checkpoints, and a parent that wrote some."""
    parent = orm.RemoteData(computer=codes['moose'].computer, remote_path=str(tmp_path)).store()
    interval = {'checkpoint_interval': orm.Float(5.0)}
    cases = [
        ({'recover': orm.Bool(True), **interval}, 'recover = True needs parent_folder'),
        ({'parent_folder': parent, **interval}, 'parent_folder is only used to recover'),
        ({'parent_folder': parent, 'recover': orm.Bool(True)}, 'needs checkpoint_interval as well'),
        ({'checkpoint_interval': orm.Float(0.0)}, 'checkpoint_interval = 0.0 s must be > 0'),
        ({'files': {'x': orm.SinglefileData(io.BytesIO(b'x'), filename='checkpoint.i')}, **interval}, 'clashes'),
    ]
    # a parent folder made by a MooseCalculation without checkpoints
    creator = orm.CalcJobNode(computer=codes['moose'].computer, process_type='aiida.calculations:multiscale.moose')
    creator.set_option('resources', {'num_machines': 1, 'num_mpiprocs_per_machine': 1})
    creator.store()
    orphan = orm.RemoteData(computer=codes['moose'].computer, remote_path=str(tmp_path))
    orphan.base.links.add_incoming(creator, link_type=LinkType.CREATE, link_label='remote_folder')
    orphan.store()
    cases.append(({'parent_folder': orphan, 'recover': orm.Bool(True), **interval}, 'which wrote no checkpoints'))
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            run_get_node(_calc_builder(codes['moose'], **kwargs))


# ---------------------------------------------------------------------------------------------------------------------
# The real thing: Slurm kills a phase-field cycle at its time limit, the work chain recovers it from its checkpoint
# ---------------------------------------------------------------------------------------------------------------------
#: One phase-field cycle of about 200 explicit time steps (dt capped at 0.005 of the cycle): ~7 s on a quiet 2-core
#: machine, ~35 s at a load of 10.  The recovered run, with the same 1-minute limit, must finish the cycle in one go.
#: Reduced units: 8 grains of d0 on a 32 x 32 grid (side sqrt(8 pi)/2 d0, interface 3 elements); the interface asks
#: for a reduced time of about 0.02 (:func:`_interface`), within this one cycle of 0.05, so nothing is extrapolated.
CYCLE = {
    'grid': 32,
    'grains': 8,
    'min_grains': 4,
    'realisations': 1,
    'interface_elements': 3,
    'order_parameters': 6,
    'seed': 3,
    'cycle_time': 0.05,
    'max_cycles': 1,
    'frames_per_cycle': 6,  # the fewest frames a growth-law fit takes (the validator asks for them)
    'dt_max_fraction': 0.005,
}


def _moose_pids(workdir: str) -> list[int]:
    """Our MOOSE processes (``-i moose.i``, not the shell of the wrapper script) whose cwd is ``workdir``."""
    pids = []
    for entry in pathlib.Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / 'cwd') != workdir:
                continue
            argv = (entry / 'cmdline').read_bytes().split(b'\0')
            comm = (entry / 'comm').read_text().strip()
        except OSError:  # gone, or not ours
            continue
        if b'moose.i' in argv and comm not in ('sh', 'bash', 'dash'):
            pids.append(int(entry.name))
    return pids


class _Freezer:
    """Freezes (SIGSTOP) the MOOSE process of one job once it has written its first checkpoint: a job that stalls.

    It polls ``/proc`` and the job's working directory from a thread of its own (no AiiDA calls there), so the event
    loop that runs the work chain cannot delay it.  :meth:`release` kills the frozen process if it is still there.
    """

    def __init__(self):
        self.frozen: list[int] = []
        self.checkpoint_seen = False
        self._workdir = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name='freeze-first-moose-job', daemon=True)

    def start(self, workdir: str) -> None:
        self._workdir = os.path.realpath(workdir)
        self._thread.start()

    def _watch(self) -> None:
        checkpoints = pathlib.Path(self._workdir) / CHECKPOINT_DIRECTORY
        while not self._done.is_set():
            if any(checkpoints.glob('*-restart-*.rd/header')):
                self.checkpoint_seen = True
                # let the writer finish this checkpoint (mesh, restart data and header of this small mesh take
                # ~50 ms here); the next one comes only checkpoint_interval = 3 s later
                time.sleep(0.5)
                pids = _moose_pids(self._workdir)
                # MOOSE rewrites its CSV at every time step: a freeze in the middle of that write would leave it
                # empty or cut short, and the kill would keep it so (seen in CI: a 0-byte CSV, so the recovered
                # run's rows had no header).  That case is the parser's (test_parser_names_headerless_csv...); this
                # test is about an intact recovery, so thaw and freeze again until the CSV on disk is whole.
                for _ in range(200):
                    self._signal(pids, signal.SIGSTOP)
                    if self._csv_intact():
                        break
                    self._signal(pids, signal.SIGCONT)
                    time.sleep(0.01)
                self.frozen.extend(pids)
                return
            self._done.wait(0.05)

    @staticmethod
    def _signal(pids, sig) -> None:
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _csv_intact(self) -> bool:
        """The phase-field CSV exists, starts with its header and ends with a whole row."""
        try:
            text = (pathlib.Path(self._workdir) / 'phase_field.csv').read_text()
        except OSError:
            return False
        return text.startswith('time,') and text.endswith('\n') and text.count('\n') >= 2

    def release(self) -> None:
        """Stop watching; SIGKILL (and SIGCONT) what is still frozen, checking that the pid is still that process."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for pid in self.frozen:
            if pid in _moose_pids(self._workdir):
                for sig in (signal.SIGKILL, signal.SIGCONT):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass


def _interface(anneal_time=1.0e-6):
    from aiida_multiscale.data.handoff import HandoffData

    values = {
        'gb_energy': (0.36, 'J/m**2'),
        'mobility_prefactor': (2.5e-6, 'm**4/(J*s)'),
        'activation_energy': (0.23, 'eV'),
        'temperature': (700.0, 'K'),
        'anneal_time': (anneal_time, 's'),
        'initial_grain_size': (1.0e-6, 'm'),
    }
    return HandoffData({k: {'value': v, 'unit': u, 'std': None, 'note': 'test'} for k, (v, u) in values.items()})


def _run_with_reference(builder, reference_code, freezer: _Freezer):
    """Run the work chain and, as soon as its first MooseCalculation exists, the same input uninterrupted.

    Both run in this interpreter's event loop, so the reference (on ``core.direct``) costs no extra wall time: it
    runs while the Slurm job is queued, killed and recovered.  ``freezer`` is started on the first calculation's
    remote working directory as soon as it is known (at upload, before the job is submitted).
    """
    from aiida.manage import get_manager
    from plumpy.greenback_bridge import ensure_portal

    runner = get_manager().get_runner()
    workchain = runner.instantiate_process(builder)

    async def run_workchain():
        await ensure_portal()
        await workchain.step_until_terminated()

    async def run_reference():
        await ensure_portal()
        while True:
            calcs = [n for n in workchain.node.called_descendants if isinstance(n, orm.CalcJobNode)]
            if calcs or workchain.has_terminated():
                break
            await asyncio.sleep(1)
        assert calcs, 'the work chain launched no MooseCalculation'
        first = calcs[0]
        reference = MooseCalculation.get_builder()
        reference.code = reference_code
        reference.input_file = first.inputs.input_file
        reference.files = dict(first.inputs.files)
        reference.metadata.options.max_wallclock_seconds = 3600
        reference.metadata.label = 'uninterrupted reference'
        process = runner.instantiate_process(reference)
        await process.step_until_terminated()
        return process.node

    async def watch_first_job():
        await ensure_portal()
        while not workchain.has_terminated():
            calcs = [n for n in workchain.node.called_descendants if isinstance(n, orm.CalcJobNode)]
            workdir = calcs[0].get_remote_workdir() if calcs else None
            if workdir is not None:
                freezer.start(workdir)
                return
            await asyncio.sleep(0.2)

    async def both():
        return await asyncio.gather(run_workchain(), run_reference(), watch_first_job())

    _, reference_node, _ = runner.loop.run_until_complete(both())
    return workchain.node, reference_node


@pytest.mark.real_code
@pytest.mark.slow
def test_phase_field_recovers_from_checkpoint_after_slurm_kill(slurm_codes, codes):
    """Killed by Slurm at 1 min, the cycle is continued from its checkpoint and ends as an uninterrupted run does.

    Same final postprocessors (grain areas, dt, iterations) and the same output times as the uninterrupted reference
    to round-off: the recovered run continues the same time integration, it does not start the cycle over.

    The first job's MOOSE process is frozen with SIGSTOP once it has written its first checkpoint.  That simulates a
    job that stalls (a hung file system, a dead node, a deadlock) or one that simply needs longer than its time limit:
    it still holds its allocation and makes no progress, so Slurm's own time limit (1 min; ``KillWait = 5`` s in the
    local configuration) ends it with TIMEOUT, and the CalcJob with exit 120.  Without the freeze, whether the kill
    lands mid-run depends on the machine's speed: a cycle long enough for a fast machine costs minutes on a slow one.
    The recovered run is not frozen and completes the cycle.
    """
    from aiida.common.log import configure_logging

    # The work chain runs in this interpreter, and its reports reach the database only through AiiDA's ORM log handler.
    # A CLI command invoked in-process earlier in the session (its verbosity option calls configure_logging()) removes
    # that handler, so put it back: the report is asserted below.
    configure_logging(with_orm=True)
    builder = PhaseFieldWorkChain.get_builder_from_protocol(
        slurm_codes['moose'], interface=_interface(), protocol='fast', overrides={'parameters': CYCLE}
    )
    builder.moose.metadata.options.max_wallclock_seconds = 60
    builder.moose.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    builder.moose.metadata.options.withmpi = False
    builder.checkpoint_interval = orm.Float(3.0)
    builder.max_iterations = orm.Int(3)  # the killed run, the recovered one, one spare
    freezer = _Freezer()
    try:
        node, reference = _run_with_reference(builder, codes['moose'], freezer)
    finally:
        freezer.release()

    assert reference.is_finished_ok, reference.exit_message
    calcs = sorted((n for n in node.called_descendants if isinstance(n, orm.CalcJobNode)), key=lambda n: n.ctime)
    print('calculations:', [(c.pk, c.exit_status) for c in calcs], 'reference steps:',
          reference.outputs.output_parameters['num_time_steps'], 'frozen:', freezer.frozen)  # fmt: skip
    assert freezer.frozen, (
        'the first job was not frozen: '
        + ('its MOOSE process had ended' if freezer.checkpoint_seen else 'it wrote no checkpoint')
        + ' (is CYCLE too short for checkpoint_interval = 3 s?)'
    )
    assert calcs[0].exit_status == OUT_OF_WALLTIME, calcs[0].exit_message
    assert len(calcs) == 2, 'expected the killed run and one recovered run that finishes the cycle'
    assert node.is_finished_ok, (node.exit_status, node.exit_message, node.exception)
    killed, last = calcs
    assert last.inputs.parent_folder.uuid == killed.outputs.remote_folder.uuid
    assert last.inputs.recover.value is True
    assert last.inputs.input_file.uuid == killed.inputs.input_file.uuid
    checkpoint = killed.outputs.output_parameters['checkpoint']
    assert checkpoint['new'] and checkpoint['time_step'] >= 1
    # the recovered run starts right after the killed run's newest checkpoint: continued, not started over
    assert last.outputs.output_parameters['first_time_step'] == checkpoint['time_step'] + 1
    assert last.is_finished_ok, last.exit_message

    final = last.outputs.output_parameters.get_dict()
    expected = reference.outputs.output_parameters.get_dict()
    assert final['num_time_steps'] == expected['num_time_steps']
    assert set(final['postprocessors']) == set(expected['postprocessors'])
    for name, value in expected['postprocessors'].items():
        assert final['postprocessors'][name] == pytest.approx(value, rel=1e-8, abs=1e-10), name
    np.testing.assert_allclose(
        last.outputs.postprocessors.get_array('time'), reference.outputs.postprocessors.get_array('time'), rtol=1e-12
    )
    from aiida.cmdline.utils.common import get_workchain_report

    report = get_workchain_report(node, 'REPORT')
    assert 'killed at its walltime' in report and 'recovering from its checkpoint at time step' in report
    # the cycle's grain analysis ran on the continued Exodus file
    assert len(node.outputs.grain_history.get_array('time')) == CYCLE['frames_per_cycle']

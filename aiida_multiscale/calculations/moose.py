"""``MooseCalculation``: one run of a MOOSE application on an input file or an input directory, plus auxiliary files."""

from __future__ import annotations

import os
import re

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob

from aiida_multiscale.engines.moose.hit import HitError, render_hit, validate_cli_argument
from aiida_multiscale.resources import validate_calcjob_resources

__all__ = ('CHECKPOINT_DIRECTORY', 'CHECKPOINT_INPUT', 'MooseCalculation', 'checkpoint_input')

_FILENAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-]*$')
#: The extra input file (merged by MOOSE with the main one: ``-i moose.i checkpoint.i``) that adds the checkpoints.
CHECKPOINT_INPUT = 'checkpoint.i'
#: ``file_base`` of the Checkpoint output: MOOSE writes ``<file_base>_cp/<step>-mesh.cpa.gz`` and
#: ``<step>-restart-0.rd`` there, whatever the input's own ``Outputs/file_base`` is.
CHECKPOINT_BASE = 'checkpoint'
CHECKPOINT_DIRECTORY = f'{CHECKPOINT_BASE}_cp'
#: Outputs of the killed run copied next to the recovered one: MOOSE appends to its Exodus and CSV files on
#: ``--recover`` (and aborts if the Exodus file is missing), so the continued files are complete.
RECOVER_COPY_GLOBS = ('*.csv', '*.e', '*.e-s*')


def checkpoint_input(wall_time_interval: float) -> str:
    """The HIT of the Checkpoint output: one every ``wall_time_interval`` s of wall time, the last two kept.

    Keeping two means that a kill while the newest one is being written still leaves a complete one (MOOSE's
    advice).  If the input sets a common ``Outputs/time_step_interval``, MOOSE also checkpoints at those steps.
    """
    block = {
        'type': 'Checkpoint',
        'file_base': CHECKPOINT_BASE,
        'wall_time_interval': float(wall_time_interval),
        'num_files': 2,
    }
    return render_hit({'Outputs': {'aiida_checkpoint': block}})


def _validate_checkpoint_interval(value, _):
    if value is not None and not value.value > 0:
        return f'checkpoint_interval = {value.value} s must be > 0 (wall-clock seconds between MOOSE checkpoints)'


def _validate_threads(value, _):
    if value is not None and not 1 <= value.value <= 1024:
        return f'threads must be between 1 and 1024 (MOOSE --n-threads), got {value.value}'


def _validate_cmdline(value, _):
    if value is None:
        return None
    for argument in value.get_list():
        if isinstance(argument, str) and (argument.startswith('--n-threads') or argument in ('-i', '--color')):
            return f'cmdline: {argument!r} is set by the calculation itself; use the `threads` input for threads'
        try:
            validate_cli_argument(argument)
        except HitError as exc:
            return f'cmdline: {exc}'


def _validate_input_file(value, _):
    if value is None:
        return None
    if isinstance(value, orm.Str):
        text = value.value
    else:
        with value.open(mode='rb') as handle:
            text = handle.read().decode('utf-8', errors='replace')
    if not text.strip():
        return 'input_file is empty: render a MOOSE input with aiida_multiscale.engines.moose.hit.render_hit()'
    if '\x00' in text:
        return 'input_file contains NUL bytes: it must be MOOSE HIT text'


def _validate_recover(inputs) -> str | None:
    """``recover`` needs the RemoteData of a run that wrote checkpoints, on the computer this one runs on."""
    recover = inputs.get('recover')
    parent = inputs.get('parent_folder')
    if recover is not None and recover.value and parent is None:
        return (
            'recover = True needs parent_folder: the remote_folder of the MooseCalculation whose '
            f'{CHECKPOINT_DIRECTORY}/ to continue from'
        )
    if parent is None:
        return None
    if recover is None or not recover.value:
        return 'parent_folder is only used to recover from its checkpoints: set recover = True as well'
    if 'checkpoint_interval' not in inputs:
        return (
            'recover = True needs checkpoint_interval as well: MOOSE recovers only an input with the same outputs '
            'as the run that wrote the checkpoint, and the continued run must write checkpoints of its own'
        )
    code = inputs.get('code')
    if code is not None and parent.computer is not None and code.computer.uuid != parent.computer.uuid:
        return (
            f'parent_folder is on computer {parent.computer.label!r} but the code runs on {code.computer.label!r}: '
            'MOOSE checkpoints can only be copied on the same computer'
        )
    creator = parent.creator
    if creator is not None and creator.process_type == 'aiida.calculations:multiscale.moose':
        if 'checkpoint_interval' not in creator.inputs:
            return (
                f'parent_folder comes from MooseCalculation<{creator.pk}>, which wrote no checkpoints (it had no '
                'checkpoint_interval): there is nothing to recover from; rerun it instead'
            )
    return None


def _validate_inputs(inputs, ctx):
    """Auxiliary file names must be plain names in the working directory and must not clash with the input or log.

    The resources must suit the code and the threads (MPI ranks need withmpi, each thread a core): checked here, for
    calculations built by hand, with the same rules as the protocol builders.
    """
    error = _validate_recover(inputs)
    if error:
        return error
    options = inputs.get('metadata', {}).get('options', {})
    threads = inputs['threads'].value if 'threads' in inputs else 1
    if error := validate_calcjob_resources('MooseCalculation', inputs.get('code'), options, threads):
        return error
    input_name = options.get('input_filename', MooseCalculation._DEFAULT_INPUT_FILE)
    if error := _validate_input_folder(inputs, ctx, input_name, options.get('output_filename', 'moose.log')):
        return error
    reserved = {input_name, options.get('output_filename', 'moose.log')}
    if 'checkpoint_interval' in inputs:
        reserved.add(CHECKPOINT_INPUT)
    folder = set(inputs['input_folder'].base.repository.list_object_names()) if 'input_folder' in inputs else set()
    seen = {}
    for key, node in (inputs.get('files') or {}).items():
        name = node.filename
        if not _FILENAME.match(name):
            return f'files.{key}: file name {name!r} must be a plain name (letters, digits, _ . -), no directories'
        if name in reserved:
            return f'files.{key}: file name {name!r} clashes with the input or log file name; rename it'
        if name in folder:
            return f'files.{key}: input_folder already holds {name!r}; put the file in the folder or rename it'
        if name in seen:
            return f'files.{key} and files.{seen[name]} have the same file name {name!r}'
        seen[name] = key


def _validate_input_folder(inputs, ctx, input_name: str, log_name: str) -> str | None:
    """The main input: ``input_file``, or a file at the top of ``input_folder`` named by ``input_filename``.

    MOOSE resolves ``!include`` and file names relative to the main input, so the main input must sit at the top of
    the folder, as when a user runs ``moose -i name.i`` inside it.  A work chain that exposes these inputs without
    ``input_file`` (it writes the input itself) leaves that check to the calculation it launches.
    """
    folder = inputs.get('input_folder')
    ports = ('input_file', 'input_folder')
    exposed = ctx is None or not hasattr(ctx, '__contains__') or all(port in ctx for port in ports)
    if exposed and 'input_file' not in inputs and folder is None:
        return 'give input_file (the HIT text) or input_folder (an input directory with the main input at its top)'
    if folder is None:
        return None
    if not _FILENAME.match(input_name):
        return (
            f'metadata.options.input_filename = {input_name!r} must be a plain file name: with input_folder the main '
            "input sits at the top of the folder (make the folder from the input's own directory)"
        )
    top = folder.base.repository.list_object_names()
    if 'input_file' in inputs:
        if input_name in top:
            return (
                f'input_folder already holds {input_name!r}, which input_file would overwrite: set '
                "metadata.options.input_filename to another name, or leave input_file out to run the folder's own"
            )
    elif input_name not in top or folder.base.repository.get_object(input_name).file_type.name != 'FILE':
        candidates = sorted(name for name in top if name.endswith('.i'))
        return (
            f'input_folder has no file {input_name!r} at its top: set metadata.options.input_filename to the main '
            f'input (inputs at the top: {", ".join(candidates) or "none"})'
        )
    for name in (log_name, CHECKPOINT_INPUT if 'checkpoint_interval' in inputs else None, CHECKPOINT_DIRECTORY):
        if name is not None and name in top:
            return f'input_folder holds {name!r}, which the calculation writes itself: remove or rename it'
    return None


class MooseCalculation(CalcJob):
    """One run of a MOOSE application on an input file or an input directory, plus auxiliary files.

    The input is either HIT text (``input_file``: a ``SinglefileData``, or a ``Str`` typically produced by
    :func:`~aiida_multiscale.engines.moose.hit.render_hit`, so that no user string can inject blocks), or a whole
    input directory (``input_folder``, a ``FolderData``) whose main input is named by
    ``metadata.options.input_filename``: the directory is copied into the working directory with its subfolders, so
    that ``!include`` files, meshes and data files are found by the same relative paths as when a user runs
    ``moose -i name.i`` inside it.  Both may be given: the folder then supplies the files the text refers to.
    Auxiliary files (a seed CSV, a mesh, an Exodus file to restart from) are copied next to the input under their own
    file names.  MOOSE writes its outputs next to the input, so the postprocessor CSV files, the Exodus files and the
    log are retrieved with globs.
    The standard error is joined into the log because MOOSE prints its ``*** ERROR ***`` blocks there.

    With ``checkpoint_interval`` MOOSE writes a checkpoint every so many seconds of wall time into
    ``checkpoint_cp/`` (left on the remote, not retrieved: only the names of its restart headers are fetched, into a
    temporary folder, so that the parser can say which time step can be recovered).  A run killed at its walltime is
    continued with ``recover = True`` and its ``remote_folder`` as ``parent_folder``: the checkpoints and the output
    files are copied from it and MOOSE runs ``--recover checkpoint_cp/LATEST`` on the same input, so the time
    integration goes on from the last checkpoint to the same end time.
    """

    #: Part of every node's hash (AiiDA's caching).  Bump it when a change here alters what a run computes for the
    #: same inputs (command line, files written, merged inputs), so that nodes made before it are no longer reused.
    CACHE_VERSION = 1

    _DEFAULT_INPUT_FILE = 'moose.i'
    _DEFAULT_OUTPUT_FILE = 'moose.log'

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'input_file',
            valid_type=(orm.SinglefileData, orm.Str),
            required=False,
            validator=_validate_input_file,
            help='The MOOSE input (HIT text), e.g. rendered with aiida_multiscale.engines.moose.hit.render_hit(); '
            'written as metadata.options.input_filename. Required unless input_folder holds the main input.',
        )
        spec.input(
            'input_folder',
            valid_type=orm.FolderData,
            required=False,
            help='An input directory, e.g. FolderData(tree=path), copied into the working directory with its '
            'subfolders, so that !include files, meshes and data files are found by their paths relative to the main '
            'input, as when MOOSE is run by hand inside it. Without input_file, its main input is the file named '
            'metadata.options.input_filename at its top.',
        )
        spec.input_namespace(
            'files',
            valid_type=orm.SinglefileData,
            required=False,
            dynamic=True,
            help='Auxiliary files copied next to the input under their own file names: seed CSV, meshes, Exodus files '
            'to restart from. The namespace keys are only link labels; the input refers to the file names.',
        )
        spec.input(
            'threads',
            valid_type=orm.Int,
            required=False,
            validator=_validate_threads,
            help='Number of threads (MOOSE --n-threads=N); default: 1.',
        )
        spec.input(
            'cmdline',
            valid_type=orm.List,
            required=False,
            validator=_validate_cmdline,
            help='Extra command-line arguments: known safe flags (e.g. --error-unused) or overrides Block/param=value '
            'with a single-token value. Each is validated; -i, --color and --n-threads are set by the calculation.',
        )
        spec.input(
            'checkpoint_interval',
            valid_type=orm.Float,
            required=False,
            validator=_validate_checkpoint_interval,
            help='Wall-clock seconds between MOOSE checkpoints (Outputs/Checkpoint wall_time_interval, written to '
            f'{CHECKPOINT_DIRECTORY}/, last two kept); needed to continue a run killed at its walltime. Default: none.',
        )
        spec.input(
            'parent_folder',
            valid_type=orm.RemoteData,
            required=False,
            help='With recover = True: the remote_folder of the killed MooseCalculation to continue. Its checkpoints '
            f'({CHECKPOINT_DIRECTORY}/) and output files (CSV, Exodus) are copied, not linked, so it stays untouched.',
        )
        spec.input(
            'recover',
            valid_type=orm.Bool,
            required=False,
            help='Continue the run of parent_folder from its last checkpoint (moose --recover): the input_file and '
            'files must be those of that run, and checkpoint_interval must be set. Default: False.',
        )
        spec.input(
            'metadata.options.input_filename',
            valid_type=str,
            default=cls._DEFAULT_INPUT_FILE,
            help='Name of the main input file in the working directory; with input_folder and no input_file, the '
            'name of the main input at the top of that folder (e.g. dogbone3d_elas.i).',
        )
        spec.input(
            'metadata.options.output_filename',
            valid_type=str,
            default=cls._DEFAULT_OUTPUT_FILE,
            help='Name of the log file (MOOSE standard output and error).',
        )
        spec.input(
            'metadata.options.require_csv',
            valid_type=bool,
            default=True,
            help='Whether a postprocessor CSV file (Outputs/csv = true) must be written; if so, its absence is '
            'exit code ERROR_MISSING_CSV.',
        )
        spec.input(
            'metadata.options.require_exodus',
            valid_type=bool,
            default=True,
            help='Whether an Exodus file (Outputs/exodus = true) must be written; if so, its absence is exit '
            'code ERROR_MISSING_EXODUS.',
        )
        spec.inputs['metadata']['options']['parser_name'].default = 'multiscale.moose'
        spec.inputs['metadata']['options']['withmpi'].default = False
        spec.inputs['metadata']['options']['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.inputs.validator = _validate_inputs

        spec.output(
            'output_parameters',
            valid_type=orm.Dict,
            help='Final value of every postprocessor (`postprocessors`: {name: value}), the final `time`, '
            'the number of time steps, nonlinear iterations and failed solves, and the output file names.',
        )
        spec.output(
            'postprocessors',
            valid_type=orm.ArrayData,
            required=False,
            help='Time series of the postprocessors: one array per CSV column (`time` included).',
        )
        spec.output(
            'exodus',
            valid_type=orm.SinglefileData,
            required=False,
            help='The Exodus file written by this run (last state: used to restart or to read fields).',
        )
        spec.default_output_node = 'output_parameters'

        # Unrecoverable: nothing to parse, or MOOSE refused the input.  A missing log or a kill by a signal may be the
        # machine's fault, not the input's: `invalidates_cache` keeps AiiDA's caching from replaying such a failure.
        spec.exit_code(
            300, 'ERROR_OUTPUT_LOG_MISSING', invalidates_cache=True, message='The MOOSE log file was not retrieved.'
        )
        spec.exit_code(310, 'ERROR_MOOSE_INPUT', message='MOOSE stopped with an error (usually in the input): {error}')
        spec.exit_code(
            311,
            'ERROR_ABNORMAL_TERMINATION',
            invalidates_cache=True,
            message='MOOSE was terminated abnormally ({signal}) at time {time}{cause}; its outputs are incomplete.',
        )
        # Missing outputs.
        spec.exit_code(
            320,
            'ERROR_MISSING_CSV',
            message='No postprocessor CSV file was written (set Outputs/csv = true in the input, or '
            'metadata.options.require_csv = False to take the postprocessors from the Exodus file or the log).',
        )
        spec.exit_code(321, 'ERROR_EMPTY_CSV', message='The postprocessor CSV file {filename} has no data rows.')
        spec.exit_code(
            322, 'ERROR_MISSING_EXODUS', message='No Exodus file was written (set Outputs/exodus = true in the input).'
        )
        # Restartable: the physics is fine but the solver gave up.
        spec.exit_code(
            400,
            'ERROR_NOT_CONVERGED',
            message='The nonlinear solve did not converge (at time {time}); try a smaller time step or '
            'a looser tolerance.',
        )
        spec.exit_code(
            401,
            'ERROR_TIMESTEP_BELOW_DTMIN',
            message='The solve failed with the time step already at or below dtmin (at time {time}, dt '
            '{dt}); restart from the last Exodus state with a smaller dtmin or better preconditioning.',
        )

    def prepare_for_submission(self, folder):
        """Write the input, list the auxiliary files to copy, and build the command line."""
        options = self.inputs.metadata.options
        input_node = self.inputs.get('input_file')
        if input_node is not None:
            text = input_node.value if isinstance(input_node, orm.Str) else input_node.get_content(mode='r')
            with folder.open(options.input_filename, 'w', encoding='utf-8') as handle:
                handle.write(text)
        inputs = [options.input_filename]
        if 'checkpoint_interval' in self.inputs:
            with folder.open(CHECKPOINT_INPUT, 'w', encoding='utf-8') as handle:
                handle.write(checkpoint_input(self.inputs.checkpoint_interval.value))
            inputs.append(CHECKPOINT_INPUT)

        local_copy_list = []
        if 'input_folder' in self.inputs:
            # The whole tree, subfolders included, into the working directory itself.
            local_copy_list.append((self.inputs.input_folder.uuid, '', ''))
        local_copy_list.extend(
            (node.uuid, node.filename, node.filename) for node in (self.inputs.get('files') or {}).values()
        )

        cmdline = ['-i', *inputs, '--color', 'off']
        remote_copy_list = []
        if 'recover' in self.inputs and self.inputs.recover.value:
            parent = self.inputs.parent_folder
            path = parent.get_remote_path()
            uuid = parent.computer.uuid
            remote_copy_list.append((uuid, os.path.join(path, CHECKPOINT_DIRECTORY), CHECKPOINT_DIRECTORY))
            remote_copy_list.extend((uuid, os.path.join(path, pattern), '.') for pattern in RECOVER_COPY_GLOBS)
            cmdline.extend(['--recover', f'{CHECKPOINT_DIRECTORY}/LATEST'])
        if 'threads' in self.inputs:
            cmdline.append(f'--n-threads={self.inputs.threads.value}')
        if 'cmdline' in self.inputs:
            cmdline.extend(self.inputs.cmdline.get_list())

        codeinfo = datastructures.CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = cmdline
        codeinfo.stdout_name = options.output_filename
        codeinfo.join_files = True

        calcinfo = datastructures.CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.remote_copy_list = remote_copy_list
        calcinfo.retrieve_list = [options.output_filename, '*.csv', '*.e', '*.e-s*']
        if 'checkpoint_interval' in self.inputs:
            # Only the small restart headers, to a temporary folder: their names tell the parser which steps exist.
            calcinfo.retrieve_temporary_list = [(f'{CHECKPOINT_DIRECTORY}/*-restart-*.rd/header', '.', 2)]
        return calcinfo

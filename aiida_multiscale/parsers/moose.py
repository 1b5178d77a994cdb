"""``MooseParser``: postprocessors (CSV, Exodus globals or log) -> time series and final values, and MOOSE's errors."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import tempfile

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.parsers import Parser

from aiida_multiscale.engines.moose.exodus import read_global_variables

__all__ = ('MooseParser', 'latest_checkpoint', 'log_postprocessors', 'parse_csv', 'parse_log', 'root_cause')

_ANSI = re.compile(r'\x1b\[[0-9;]*m')
_TIME_STEP = re.compile(r'^Time Step\s+(\d+), time = ([^,]+), dt = (\S+)', re.MULTILINE)
#: Every time step line, the initial ``Time Step 0, time = 0`` (no dt) included.
_TIME_STEP_ANY = re.compile(r'^Time Step\s+(\d+), time = ([^,\n]+)', re.MULTILINE)
#: A restart header of a MOOSE checkpoint: ``<checkpoint dir>/<time step>-restart-<rank>.rd/header``.
_CHECKPOINT = re.compile(r'^(\d+)-restart-\d+\.rd$')
_NONLINEAR = re.compile(r'^\s*\d+ Nonlinear \|R\|', re.MULTILINE)
#: What bash writes on the job script's standard error when the code dies from a signal (killed, crashed), and what
#: Slurm writes there on `scancel` ("slurmstepd: error: *** JOB 12 ON node CANCELLED AT ...").
_SIGNAL = re.compile(
    r'\b(Killed|Segmentation fault|Terminated|Bus error|Floating point exception|Illegal instruction|Aborted'
    r'|CANCELLED AT)\b'
)
_DTMIN = (
    'timestep already at or below dtmin',
    'timestep already at dtmin',  # IterationAdaptiveDT in MOOSE 975c9a1c: "Solve failed and timestep already at dtmin"
    'Time step too small',
    'dt < dtmin',
    'below dtmin',
)
#: The first line of a PETSc error block; the ``[rank]PETSC ERROR:`` lines after it name the error, generic class first
_PETSC_BLOCK = re.compile(r'^\[\d+\]PETSC ERROR: -+ Error Message -+\s*$', re.MULTILINE)
_PETSC_LINE = re.compile(r'^\[\d+\]PETSC ERROR: (.*)$')
#: Where PETSc's own message ends and its report (unused options, version, configure line, stack) begins.
_PETSC_END = (
    'WARNING! There are unused option',
    'See https://petsc.org/release/faq',
    'PETSc Release Version',
    'Option left:',
)
_LIBMESH = re.compile(r'^libMesh terminating:\s*\n(.+)$', re.MULTILINE)
_TERMINATE = re.compile(
    r"^terminate called after throwing an instance of '([^']+)'\s*\n\s*what\(\):\s*(.+)$", re.MULTILINE
)
#: Lines that show that the process ended through ``std::terminate`` (hence SIGABRT), whatever the job script says.
_ABORTED = re.compile(r'^(terminate called |libMesh terminating:)', re.MULTILINE)


def root_cause(text: str) -> str | None:
    """The first error that MOOSE, libMesh or PETSc wrote into the log, as one line, or None.

    A solver that is missing from the build ("Unable to find requested PC type hypre"), a failed factorisation or a
    C++ exception end the run through ``std::terminate`` without a MOOSE ``*** ERROR ***`` block: only these lines say
    why, and they are what the exit message must carry.
    """
    text = _ANSI.sub('', text)
    found = []
    block = _moose_error_block(text)
    if block is not None:
        found.append((text.index('*** ERROR ***'), ' '.join(block.split()) or 'unknown MOOSE error'))
    match = _PETSC_BLOCK.search(text)
    if match:
        lines = []
        for line in text[match.end() :].lstrip('\n').splitlines():
            petsc = _PETSC_LINE.match(line)
            if not petsc or petsc.group(1).lstrip().startswith(_PETSC_END) or petsc.group(1).startswith('#'):
                break
            lines.append(petsc.group(1).strip())
        if lines:
            # PETSc writes the generic class of the error first ("Unknown type. Check for miss-spelling ..."), then
            # the message of the call that failed: the latter is the root cause.
            message = lines[-1] if len(lines) > 1 else lines[0]
            extra = ' '.join(lines[:-1])
            found.append((match.start(), f'PETSc error: {message}' + (f' ({extra})' if extra else '')))
    match = _LIBMESH.search(text)
    if match:
        found.append((match.start(), f'libMesh error: {match.group(1).strip()}'))
    match = _TERMINATE.search(text)
    if match:
        found.append((match.start(), f'{match.group(1)}: {match.group(2).strip()}'))
    if not found:
        return None
    return min(found, key=lambda item: item[0])[1][:2000]


def parse_log(text: str) -> dict:
    """Facts from a MOOSE log: the ``*** ERROR ***`` text, convergence of the last solve, time steps, iterations."""
    text = _ANSI.sub('', text)
    result = {'error': None, 'dtmin_reached': False, 'last_solve_converged': None, 'warnings': []}
    block = _moose_error_block(text)
    if block is not None:
        result['error'] = ' '.join(block.split())[:2000] or 'unknown error'
        result['dtmin_reached'] = any(marker in block for marker in _DTMIN)
    for match in re.finditer(r'\*\*\* Warning[^*]*\*\*\*\n(.*?)(\n\s*\n|$)', text, re.DOTALL):
        result['warnings'].append(' '.join(match.group(1).split())[:500])
    solves = re.findall(r'Solve (Converged|Did NOT Converge)!', text)
    if solves:
        result['last_solve_converged'] = solves[-1] == 'Converged'
    result['num_failed_solves'] = sum(1 for solve in solves if solve != 'Converged')
    steps = _TIME_STEP.findall(text)
    result['num_time_steps'] = int(steps[-1][0]) if steps else 0
    # A recovered run starts at the step after its checkpoint; 1 for a run from the start.
    result['first_time_step'] = int(steps[0][0]) if steps else None
    result['step_times'] = {int(step): time.strip() for step, time, _ in steps}
    result['last_time'] = steps[-1][1].strip() if steps else None
    result['last_converged_time'] = _last_converged_time(text)
    result['last_dt'] = steps[-1][2].strip() if steps else None
    result['num_nonlinear_iterations'] = max(0, len(_NONLINEAR.findall(text)) - len(solves))
    result['postprocessor_columns'] = _postprocessor_columns(text)
    result['aborted'] = bool(_ABORTED.search(text))
    return result


def _moose_error_block(text: str) -> str | None:
    """The text of MOOSE's first ``*** ERROR ***`` block, without the stack frames that follow it, or None."""
    if '*** ERROR ***' not in text:
        return None
    block = text.split('*** ERROR ***', 1)[1]
    return re.split(r'\n\s*Stack frames:|\nterminate called|\n\s*\[\d+\]\s*\d+:', block, maxsplit=1)[0]


def _last_converged_time(text: str) -> str | None:
    """The time of the last time step whose solve converged (step 0, the initial state, counts), or None."""
    matches = list(_TIME_STEP_ANY.finditer(text))
    for index in range(len(matches) - 1, -1, -1):
        match = matches[index]
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        if match.group(1) == '0' or 'Solve Converged!' in text[match.end() : end]:
            return match.group(2).strip()
    return None


def _postprocessor_columns(text: str) -> list[str]:
    """The column names of the last ``Postprocessor Values:`` table MOOSE printed: ``time``, then the postprocessors.

    MOOSE splits a wide table into several, each starting with ``time``; the CSV output has the same columns in the
    same order (both come from one FormattedTable), so this names the columns of a CSV that lost its header line.
    """
    start = text.rfind('Postprocessor Values:')
    if start < 0:
        return []
    columns = ['time']
    for line in text[start:].splitlines()[1:]:
        line = line.strip()
        if not line:
            continue
        if line[0] not in '+|:':
            break
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if cells and cells[0] == 'time':
            columns.extend(cells[1:])
    return columns if len(columns) > 1 else []


def log_postprocessors(text: str) -> dict[str, np.ndarray]:
    """The postprocessor time series from the ``Postprocessor Values:`` tables of a MOOSE log, as ``{column: array}``.

    MOOSE prints the table after every time step, with the last rows only (``Console/max_rows``, 15 by default) and
    seven significant digits: the rows of all tables together give the whole series, later tables winning for a time
    printed twice (a step repeated with a smaller dt, a recovered run).  Wide tables are split into several, each with
    ``time`` first.  For a run that writes neither CSV nor Exodus, this is all there is.
    """
    text = _ANSI.sub('', text)
    rows: dict[float, dict[str, float]] = {}
    columns = ['time']
    for block in text.split('Postprocessor Values:')[1:]:
        header = None
        for line in block.splitlines()[1:]:
            line = line.strip()
            if not line:
                continue
            if line[0] not in '+|:':
                break
            if line[0] != '|':
                continue
            cells = [cell.strip() for cell in line.strip('|').split('|')]
            if cells[0] == 'time':
                header = cells
                columns.extend(name for name in cells[1:] if name not in columns)
                continue
            if header is None or len(cells) != len(header):
                continue
            try:
                values = [float(cell) for cell in cells]
            except ValueError:
                continue  # the ':' rows that stand for rows left out
            rows.setdefault(values[0], {}).update(zip(header[1:], values[1:]))
    if not rows:
        return {}
    times = sorted(rows)
    series = {'time': np.array(times, dtype=float)}
    for name in columns[1:]:
        series[name] = np.array([rows[time].get(name, np.nan) for time in times], dtype=float)
    return series


def parse_csv(text: str) -> dict[str, np.ndarray]:
    """A MOOSE postprocessor CSV (header line, then one row per output time) as ``{column: array}``.

    A run continued with ``--recover`` appends to the CSV of the killed run from its checkpoint on, so the rows the
    killed run wrote after its last checkpoint appear twice.  A row whose time is not after the previous one
    therefore replaces every earlier row from that time on: the recovered run's values win, and the time column
    stays strictly increasing, as in an uninterrupted run.
    """
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows:
        return {}
    header = [name.strip() for name in rows[0]]
    values = []
    for row in rows[1:]:
        # A row cut short by a kill (and then continued by the recovered run on the same line) is dropped, not
        # parsed into a wrong number of columns.
        if len(row) != len(header):
            continue
        try:
            values.append([float(value) for value in row])
        except ValueError:
            continue
    data = np.array(values, dtype=float).reshape(-1, len(header))
    if 'time' in header and len(data) > 1:
        time = data[:, header.index('time')]
        kept: list[int] = []
        for index in range(len(data)):
            while kept and time[kept[-1]] >= time[index]:
                kept.pop()
            kept.append(index)
        data = data[kept]
    return {name: data[:, index] for index, name in enumerate(header)}


def latest_checkpoint(names: list[str]) -> int | None:
    """The newest time step among the names of a MOOSE checkpoint directory's entries, or None."""
    steps = [int(match.group(1)) for match in map(_CHECKPOINT.match, names) if match]
    return max(steps) if steps else None


class MooseParser(Parser):
    """Parse a ``MooseCalculation``: postprocessors -> ``postprocessors`` + ``output_parameters``, Exodus file.

    The postprocessor time series comes from the CSV output; an input without one (most MOOSE inputs write Exodus
    only) has it in the Exodus global variables, and an input with neither in the log's tables: the first found is
    used and ``output_parameters.postprocessors_source`` says which (``csv``, ``exodus``, ``log``).
    Outputs are attached whenever they exist, also when the run failed, so that a restart handler can start from the
    last Exodus state.  The exit code is chosen afterwards, most specific first: time step below dtmin, MOOSE error,
    unconverged solve, then an abnormal end (with the first error line that MOOSE, libMesh or PETSc wrote in the log),
    then missing outputs.  When the log itself is missing, the scheduler's exit code (walltime, memory) is kept
    rather than replaced by a vaguer one.
    """

    #: Part of every MooseCalculation node's hash: bump it when the outputs parsed from the same files change, so that
    #: AiiDA's cache no longer hands out nodes parsed the old way.  2: postprocessors also from Exodus or the log.
    CACHE_VERSION = 2

    def parse(self, **kwargs):
        options = self.node.get_options()
        temporary = kwargs.get('retrieved_temporary_folder')
        log_name = options.get('output_filename', 'moose.log')
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        scheduler_exit = self._scheduler_exit_code()

        if log_name not in names:
            return scheduler_exit or self.exit_codes.ERROR_OUTPUT_LOG_MISSING
        log_text = retrieved.base.repository.get_object_content(log_name, mode='r')
        log = parse_log(log_text)
        for warning in log['warnings']:
            self.logger.warning(f'MOOSE warning: {warning}')

        # Auxiliary input files (seed CSV, restart Exodus) are retrieved by the same globs: they are not outputs.
        inputs = self._input_names()
        csv_names = sorted(name for name in names if name.endswith('.csv') and name not in inputs)
        csv_name = self._main_csv(csv_names)
        csv_header = None
        if csv_name is None:
            csv_name, csv_header = self._headerless_csv(csv_names, log['postprocessor_columns'])
            if csv_name is not None:
                log['warnings'].append(
                    f'{csv_name} has no header line: the CSV that the killed run left was cut short by the kill, and '
                    f'the recovered run only appends to it.  The columns are named from the log; the rows before '
                    f'time step {log["first_time_step"]} are missing from the time series.'
                )
                self.logger.warning(log['warnings'][-1])
        exodus_name = self._main_exodus(
            sorted(name for name in names if name.endswith('.e') and name not in inputs), csv_name
        )

        series = {}
        if csv_name is not None:
            text = retrieved.base.repository.get_object_content(csv_name, mode='r')
            series = parse_csv(text if csv_header is None else ','.join(csv_header) + '\n' + text)
        csv_rows = bool(series) and len(next(iter(series.values()))) > 0
        source = 'csv' if csv_rows else None
        exodus_time = None
        if not csv_rows:
            # No CSV (an input that writes Exodus only, as most MOOSE inputs do) or an empty one: the same time
            # series is in the Exodus global variables, in full precision, else in the log's tables.
            series = {}
            if exodus_name is not None:
                exodus = self._exodus_globals(exodus_name)
                if exodus is not None and len(exodus['time']):
                    exodus_time = float(exodus['time'][-1])
                    if len(exodus) > 1:
                        series, source = exodus, 'exodus'
            if not series:
                series = log_postprocessors(log_text)
                if series:
                    source = 'log'
                    log['warnings'].append(
                        'The postprocessors come from the log\'s "Postprocessor Values" tables, which have seven '
                        'significant digits: set Outputs/csv = true (or exodus = true) for full precision.'
                    )
        if source is not None:
            where = {'csv': csv_name, 'exodus': exodus_name, 'log': log_name}[source]
            self.logger.info(f'postprocessors read from the {source} file {where}')

        parameters = {
            'postprocessors': {},
            'postprocessors_source': source,
            'time': None,
            'num_time_steps': log['num_time_steps'],
            'num_nonlinear_iterations': log['num_nonlinear_iterations'],
            'num_failed_solves': log['num_failed_solves'],
            'csv_file': csv_name,
            'exodus_file': exodus_name,
            'warnings': log['warnings'],
            'first_time_step': log['first_time_step'],
            'checkpoint': self._checkpoint(temporary, log),
        }
        if source is not None:
            array = orm.ArrayData()
            for name, values in series.items():
                array.set_array(re.sub(r'[^A-Za-z0-9_]', '_', name), values)
            self.out('postprocessors', array)
            parameters['postprocessors'] = {
                name: float(values[-1]) for name, values in series.items() if name != 'time'
            }
        if 'time' in series and len(series['time']):
            parameters['time'] = float(series['time'][-1])
        elif exodus_time is not None:
            parameters['time'] = exodus_time
        elif log['last_converged_time'] is not None:
            parameters['time'] = float(log['last_converged_time'])
        if exodus_name is not None:
            with retrieved.base.repository.open(exodus_name, mode='rb') as handle:
                self.out('exodus', orm.SinglefileData(handle, filename=exodus_name))
        self.out('output_parameters', orm.Dict(parameters))

        where = {'time': log['last_time'] or 'unknown', 'dt': log['last_dt'] or 'unknown'}
        if log['dtmin_reached']:
            return self.exit_codes.ERROR_TIMESTEP_BELOW_DTMIN.format(**where)
        if log['error']:
            return self.exit_codes.ERROR_MOOSE_INPUT.format(error=log['error'])
        if log['last_solve_converged'] is False:
            return self.exit_codes.ERROR_NOT_CONVERGED.format(time=where['time'])
        if scheduler_exit:
            return scheduler_exit
        signal = self._signal(options.get('scheduler_stderr', '_scheduler-stderr.txt'), names)
        if signal is None and log['aborted']:
            signal = 'Aborted'  # std::terminate, whether or not the job script reported the signal
        if signal:
            cause = root_cause(log_text)
            return self.exit_codes.ERROR_ABNORMAL_TERMINATION.format(
                signal=signal, time=where['time'], cause=f': {cause}' if cause else ''
            )
        if csv_name is None and options.get('require_csv', True):
            return self.exit_codes.ERROR_MISSING_CSV
        if csv_name is not None and not csv_rows:
            if options.get('require_csv', True):
                return self.exit_codes.ERROR_EMPTY_CSV.format(filename=csv_name)
        if exodus_name is None and options.get('require_exodus', True):
            return self.exit_codes.ERROR_MISSING_EXODUS
        return ExitCode(0)

    def _exodus_globals(self, name: str) -> dict | None:
        """The global variables of the retrieved Exodus file ``name``, or None if it cannot be read (cut by a kill).

        Read from a temporary copy on disk: netCDF4 then reads only the small global arrays, not the whole file.
        """
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, name)
            with self.retrieved.base.repository.open(name, mode='rb') as source, open(path, 'wb') as target:
                shutil.copyfileobj(source, target)
            try:
                return read_global_variables(path)
            except (OSError, KeyError, ValueError, IndexError) as exc:
                self.logger.warning(f'the Exodus file {name} could not be read ({exc}): postprocessors from the log')
                return None

    @staticmethod
    def _checkpoint(temporary: str | None, log: dict) -> dict | None:
        """The newest checkpoint on the remote (from the restart headers retrieved to ``temporary``), or None.

        ``new`` says whether this run wrote it (a recovered run also has the checkpoints it was copied): a restart
        handler must not recover twice from the same checkpoint without giving the run more time.
        """
        if not temporary or not os.path.isdir(temporary):
            return None
        step = latest_checkpoint(os.listdir(temporary))
        if step is None:
            return None
        time = log['step_times'].get(step)
        first = log['first_time_step']
        return {
            'time_step': step,
            'time': float(time) if time is not None else None,
            'new': first is not None and step >= first,
        }

    def _scheduler_exit_code(self) -> ExitCode | None:
        """The exit code the scheduler output parser already set (e.g. 120 out of walltime), if any."""
        status = self.node.exit_status
        if status is not None and status > 0:
            return ExitCode(status, self.node.exit_message)
        return None

    def _signal(self, stderr_name: str, names: set[str]) -> str | None:
        """The signal that killed MOOSE, as bash reported it on the job script's standard error, if any.

        Without it a killed run would look complete: its CSV and Exodus files are valid up to the last step written.
        """
        if stderr_name not in names:
            return None
        match = _SIGNAL.search(self.retrieved.base.repository.get_object_content(stderr_name, mode='r'))
        return match.group(1) if match else None

    def _input_names(self) -> set[str]:
        """Names of the input files at the top of the working directory, which the output globs retrieve as well."""
        inputs = self.node.inputs
        names = {node.filename for node in (inputs.files.values() if 'files' in inputs else ())}
        if 'input_folder' in inputs:
            names.update(inputs.input_folder.base.repository.list_object_names())
        return names

    def _main_csv(self, names: list[str]) -> str | None:
        """The postprocessor CSV: its first column is ``time``; vector-postprocessor CSVs have other columns.

        Of several, the shortest name wins: MOOSE names the main file ``<file_base>.csv`` and the per-vector
        files ``<file_base>_<name>_<step>.csv`` / ``<file_base>_<name>_time.csv``.
        """
        candidates = []
        for name in names:
            with self.retrieved.base.repository.open(name, mode='r') as handle:
                header = handle.readline().strip().split(',')
            if header and header[0].strip() == 'time' and not name.endswith('_time.csv'):
                candidates.append(name)
        return min(candidates, key=lambda n: (len(n), n)) if candidates else None

    def _headerless_csv(self, names: list[str], columns: list[str]) -> tuple[str | None, list[str] | None]:
        """A postprocessor CSV without its header line, recognised by rows as wide as the log's table, or None.

        MOOSE rewrites its CSV at every output.  A kill during that write leaves it empty or cut short, and a run
        recovered from a checkpoint restores the table's state and only appends rows, without a header.
        """
        if not columns:
            return None, None
        for name in sorted(names, key=lambda n: (len(n), n)):
            with self.retrieved.base.repository.open(name, mode='r') as handle:
                first = next((row for row in csv.reader(handle) if row), None)
            if first is None or len(first) != len(columns):
                continue
            try:
                [float(value) for value in first]
            except ValueError:
                continue
            return name, columns
        return None, None

    @staticmethod
    def _main_exodus(names: list[str], csv_name: str | None) -> str | None:
        if not names:
            return None
        if csv_name is not None and csv_name[:-4] + '.e' in names:
            return csv_name[:-4] + '.e'
        return min(names, key=lambda n: (len(n), n))

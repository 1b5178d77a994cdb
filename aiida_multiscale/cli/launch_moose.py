"""``aiida-multiscale launch moose``: any MOOSE input (a file, or a directory with its includes) under AiiDA."""

from __future__ import annotations

import json
import pathlib
import sys
import time

import click

from aiida_multiscale.cli import cmd_launch
from aiida_multiscale.cli.utils import echo_error, process_summary, resource_options

__all__ = ('build_moose_calculation', 'cmd_launch_moose')


def build_moose_calculation(
    code,
    input_path: str | pathlib.Path,
    folder: str | pathlib.Path | None = None,
    files: tuple[str, ...] = (),
    overrides: tuple[str, ...] = (),
    threads: int | None = None,
    require_csv: bool = False,
    require_exodus: bool = False,
    options: dict | None = None,
):
    """A ``MooseCalculation`` builder for a MOOSE input on disk, as a user would run ``moose -i INPUT`` by hand.

    With ``folder`` the whole directory is uploaded as ``input_folder`` (subfolders included, so ``!include`` files,
    meshes and data files keep their relative paths) and ``input_path`` names the main input at its top; without it
    only ``input_path`` is uploaded, plus the flat ``files``.  Missing outputs are not errors by default
    (``require_csv`` / ``require_exodus`` False): most inputs write Exodus only, and the parser then reads the
    postprocessors from it.

    :raises ValueError: a path that does not exist or a main input outside ``folder``.
    """
    from aiida import orm

    from aiida_multiscale.calculations.moose import MooseCalculation

    input_path = pathlib.Path(input_path)
    builder = MooseCalculation.get_builder()
    builder.code = code
    if folder is not None:
        folder = pathlib.Path(folder)
        if not folder.is_dir():
            raise ValueError(f'--folder {folder}: not a directory')
        main = input_path if input_path.is_absolute() or input_path.exists() else folder / input_path
        if not main.is_file():
            raise ValueError(f'{input_path}: no such input file (in the current directory or in {folder})')
        if main.resolve().parent != folder.resolve():
            raise ValueError(
                f'{input_path} is not at the top of --folder {folder}: MOOSE finds includes and meshes relative to '
                "the main input, so give the main input's own directory as --folder"
            )
        builder.input_folder = orm.FolderData(tree=folder.resolve())
        builder.metadata.options.input_filename = main.name
    else:
        if not input_path.is_file():
            raise ValueError(f'{input_path}: no such input file')
        builder.input_file = orm.SinglefileData(input_path.resolve())
    extra = {}
    for path in map(pathlib.Path, files):
        if not path.is_file():
            raise ValueError(f'--file {path}: no such file')
        extra[f'file_{len(extra)}'] = orm.SinglefileData(path.resolve())
    if extra:
        builder.files = extra
    if overrides:
        builder.cmdline = orm.List(list(overrides))
    if threads is not None:
        builder.threads = orm.Int(threads)
    builder.metadata.options.require_csv = require_csv
    builder.metadata.options.require_exodus = require_exodus
    if code.with_mpi is not None:
        builder.metadata.options.withmpi = code.with_mpi  # unless --withmpi says otherwise (then validated)
    for key, value in (options or {}).items():
        if key == 'resources':
            builder.metadata.options.resources = {**builder.metadata.options.resources, **value}
        else:
            builder.metadata.options[key] = value
    builder.metadata.label = f'moose {input_path.name}'
    return builder


def _result_lines(node) -> list[str]:
    """One line per final postprocessor, and where they came from."""
    if 'output_parameters' not in node.outputs:
        return []
    parameters = node.outputs.output_parameters.get_dict()
    lines = [
        f'  time = {parameters.get("time")}, {parameters.get("num_time_steps")} time steps; postprocessors from the '
        f'{parameters.get("postprocessors_source") or "run: none"}'
    ]
    lines += [f'  {name} = {value:.10g}' for name, value in sorted(parameters.get('postprocessors', {}).items())]
    return lines


@cmd_launch.command('moose')
@click.argument('input_path', metavar='INPUT', type=click.Path(dir_okay=False))
@click.option(
    '--folder',
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="The input's directory, uploaded whole (subfolders included) so that !include files, meshes and data files "
    'are found as when MOOSE runs inside it; INPUT is the main input at its top.',
)
@click.option(
    '--file',
    'files',
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help='An extra file copied next to the input under its own name (repeatable); for inputs without --folder.',
)
@click.option(
    '--override',
    'overrides',
    multiple=True,
    help="A command-line override Block/param=value (repeatable), e.g. 'Executioner/petsc_options_value=lu'.",
)
@click.option('--threads', type=click.IntRange(1, 1024), default=None, help='MOOSE threads (--n-threads) [default: 1].')
@click.option(
    '--require-csv/--no-require-csv',
    default=False,
    show_default=True,
    help='Fail (exit 320) when the input writes no postprocessor CSV; without it the postprocessors come from the '
    'Exodus globals or the log.',
)
@click.option(
    '--require-exodus/--no-require-exodus',
    default=False,
    show_default=True,
    help='Fail (exit 322) when the input writes no Exodus file.',
)
@click.option('--code', 'code_label', default='moose@localhost', show_default=True, help='Label of the MOOSE code.')
@click.option(
    '--foreground',
    is_flag=True,
    help='Run in this process and wait (no daemon needed), instead of submitting to the daemon.',
)
@click.option('--wait', is_flag=True, help='Wait for the calculation to finish; exit non-zero if it failed.')
@click.option('--json', 'as_json', is_flag=True, help='Print the result as one JSON line at the end.')
@resource_options()
@click.option(
    '--dry-run',
    is_flag=True,
    help='Build and check the inputs, print what would be submitted as JSON, and submit nothing.',
)
def cmd_launch_moose(
    input_path,
    folder,
    files,
    overrides,
    threads,
    require_csv,
    require_exodus,
    code_label,
    foreground,
    wait,
    as_json,
    options,
    dry_run,
):
    """Run the MOOSE input INPUT as a MooseCalculation, e.g. `launch moose dogbone3d_elas.i --folder dogbone/`."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent
    from aiida.engine import run_get_node, submit

    try:
        code = orm.load_code(code_label)
    except (NotExistent, MultipleObjectsError) as exc:
        echo_error(f'--code: {exc}; run `aiida-multiscale setup` first')
    try:
        builder = build_moose_calculation(
            code, input_path, folder, files, overrides, threads, require_csv, require_exodus, options
        )
    except ValueError as exc:
        echo_error(str(exc))
    # The same validation that submit() runs, but as one line without a traceback, before anything is stored.
    spec = builder._process_class.spec()
    error = spec.inputs.validate(spec.inputs.pre_process(builder._inputs(prune=True)))
    if error is not None:
        echo_error(error.message)
    if dry_run:
        summary = {
            'process_label': 'MooseCalculation',
            'input_filename': builder.metadata.options.input_filename,
            'input_folder': str(pathlib.Path(folder).resolve()) if folder else None,
            'cmdline': list(overrides),
            'options': dict(builder.metadata.options),
        }
        click.echo(json.dumps(summary, default=str))
        return
    if foreground:
        _, node = run_get_node(builder)
    else:
        from aiida.engine.daemon.client import get_daemon_client

        if wait and not get_daemon_client().is_daemon_running:
            echo_error('the daemon is not running: start it with `verdi daemon start`, or use --foreground')
        node = submit(builder)
        if not as_json:
            click.echo(f'Submitted MooseCalculation<{node.pk}>')
        if not wait:
            if as_json:
                click.echo(json.dumps(process_summary(node)))
            return
        while not node.is_terminated:
            time.sleep(1.0)
    if as_json:
        click.echo(json.dumps(process_summary(node)))
    else:
        click.echo(f'MooseCalculation<{node.pk}> [{node.exit_status}] {node.exit_message or ""}'.rstrip())
        for line in _result_lines(node):
            click.echo(line)
    if not node.is_finished_ok:
        sys.exit(2)

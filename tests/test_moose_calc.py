"""Tests of ``MooseCalculation``: port validation before submission, and a real MOOSE run through AiiDA."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from aiida_multiscale.calculations.moose import MooseCalculation
from aiida_multiscale.cli import cli
from aiida_multiscale.engines.moose.hit import render_hit


def _input(mesh_file: str | None = None) -> str:
    """Transient diffusion; with ``mesh_file`` the mesh comes from an auxiliary CSV read by PiecewiseConstantFromCSV."""
    blocks = {
        'Mesh': {'gen': {'type': 'GeneratedMeshGenerator', 'dim': 2, 'nx': 4, 'ny': 4}},
        'Variables': {'u': {}},
        'Kernels': {'dt': {'type': 'TimeDerivative', 'variable': 'u'}, 'diff': {'type': 'Diffusion', 'variable': 'u'}},
        'BCs': {
            'left': {'type': 'DirichletBC', 'variable': 'u', 'boundary': 'left', 'value': 0},
            'right': {'type': 'FunctionDirichletBC', 'variable': 'u', 'boundary': 'right', 'function': 'right'},
        },
        'Functions': {'right': {'type': 'ParsedFunction', 'expression': '1'}},
        'Executioner': {
            'type': 'Transient',
            'num_steps': 2,
            'dt': 0.1,
            'solve_type': 'NEWTON',
            'petsc_options_iname': '-pc_type',
            'petsc_options_value': 'ilu',
        },
        'Postprocessors': {'average': {'type': 'ElementAverageValue', 'variable': 'u'}},
        'Outputs': {'csv': True, 'exodus': True, 'file_base': 'result'},
    }
    if mesh_file:
        # the right-boundary value is read from the auxiliary file: proves it was copied next to the input
        blocks['Functions']['right'] = {'type': 'PiecewiseLinear', 'data_file': mesh_file, 'format': 'columns'}
    return render_hit(blocks)


def _builder(code, **kwargs):
    builder = MooseCalculation.get_builder()
    builder.code = code
    builder.metadata.options.max_wallclock_seconds = 300
    for key, value in kwargs.items():
        setattr(builder, key, value)
    return builder


@pytest.mark.real_code
def test_real_run_with_auxiliary_file_and_threads(codes):
    aux = orm.SinglefileData(io.BytesIO(b'0,2\n1,2\n'), filename='boundary.csv')
    builder = _builder(
        codes['moose'],
        input_file=orm.Str(_input('boundary.csv')),
        files={'boundary': aux},
        threads=orm.Int(1),
        cmdline=orm.List(['--error-unused']),
    )
    results, node = run_get_node(builder)
    assert node.exit_status == 0, node.exit_message
    series = results['postprocessors']
    np.testing.assert_allclose(series.get_array('time'), [0.0, 0.1, 0.2])
    # boundary value 2 from the auxiliary CSV: the mean temperature heads towards 1 (mean of 0 and 2), not 1/2
    assert 0.5 < results['output_parameters']['postprocessors']['average'] < 1.0
    assert results['exodus'].filename == 'result.e'
    assert results['output_parameters']['csv_file'] == 'result.csv'
    retrieved = set(node.outputs.retrieved.base.repository.list_object_names())
    assert {'moose.log', 'result.csv', 'result.e', 'boundary.csv'} <= retrieved
    # The cache versions are part of the node's hash: bumping either one stops AiiDA from reusing older nodes.
    assert node.base.attributes.get('cache_version') == {'calc_job': 1, 'parser': 2}


@pytest.mark.real_code
def test_real_input_error(codes):
    text = _input().replace('  num_steps = 2', '  num_steps = 2\n  nonsense_parameter = 3')
    _, node = run_get_node(
        _builder(codes['moose'], input_file=orm.SinglefileData(io.BytesIO(text.encode()), filename='x.i'))
    )
    assert node.exit_status == MooseCalculation.exit_codes.ERROR_MOOSE_INPUT.status
    assert 'nonsense_parameter' in node.exit_message


def _file(content: bytes, name: str):
    return orm.SinglefileData(io.BytesIO(content), filename=name)


@pytest.mark.parametrize(
    ('kwargs', 'match'),
    [
        (lambda: {'threads': orm.Int(0)}, 'threads must be between 1'),
        (lambda: {'cmdline': orm.List(['--mesh-only'])}, 'cmdline'),
        (lambda: {'cmdline': orm.List(['Outputs/file_base=/tmp/x'])}, 'cmdline'),
        (lambda: {'cmdline': orm.List(['--n-threads=4'])}, 'threads'),
        (lambda: {'input_file': orm.Str('  ')}, 'input_file is empty'),
        (lambda: {'files': {'a': _file(b'x', 'moose.i')}}, 'clashes'),
        (lambda: {'files': {'a': _file(b'x', 'a.csv'), 'b': _file(b'y', 'a.csv')}}, 'same file name'),
    ],
)
def test_validation_before_submission(codes, kwargs, match):
    arguments = {'input_file': orm.Str(_input())}
    arguments.update(kwargs())
    with pytest.raises(ValueError, match=match):
        run_get_node(_builder(codes['moose'], **arguments))


def test_dry_run_command_line(codes, tmp_path):
    builder = _builder(
        codes['moose'], input_file=orm.Str(_input()), threads=orm.Int(2), cmdline=orm.List(['Executioner/num_steps=1'])
    )
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    folder = node.dry_run_info['folder']
    import pathlib

    script = (pathlib.Path(folder) / '_aiidasubmit.sh').read_text()
    assert "'-i' 'moose.i' '--color' 'off' '--n-threads=2' 'Executioner/num_steps=1'  > 'moose.log' 2>&1" in script


def _tree(root, main: str = 'case.i') -> orm.FolderData:
    """An input directory as users keep one: the main input, an ``!include``d file and a data file in subfolders."""
    (root / 'common').mkdir(parents=True)
    (root / 'data').mkdir()
    text = _input('data/boundary.csv').replace('  csv = true\n', '  csv = false\n')
    executioner = text[text.index('[Executioner]') : text.index('[]', text.index('[Executioner]')) + 3]
    (root / 'common' / 'solver.i').write_text(executioner)
    (root / main).write_text(text.replace(executioner, '!include common/solver.i\n'))
    (root / 'data' / 'boundary.csv').write_text('0,2\n1,2\n')
    return orm.FolderData(tree=root)


@pytest.mark.real_code
def test_real_run_of_an_input_folder(codes, tmp_path):
    """A FolderData with subfolders: `!include` and a data file found by their relative paths; no CSV written."""
    builder = _builder(codes['moose'], input_folder=_tree(tmp_path / 'case'))
    builder.metadata.options.input_filename = 'case.i'
    builder.metadata.options.require_csv = False
    results, node = run_get_node(builder)
    assert node.exit_status == 0, node.exit_message
    parameters = results['output_parameters'].get_dict()
    assert parameters['csv_file'] is None and parameters['postprocessors_source'] == 'exodus'
    assert parameters['time'] == pytest.approx(0.2) and parameters['num_time_steps'] == 2
    # boundary value 2 from data/boundary.csv (as in the flat-file test above)
    assert 0.5 < parameters['postprocessors']['average'] < 1.0
    np.testing.assert_allclose(results['postprocessors'].get_array('time'), [0.0, 0.1, 0.2])
    # the folder's own files are inputs, not outputs, even where the retrieve globs reach them
    assert results['exodus'].filename == 'result.e'


def test_dry_run_copies_the_input_tree(codes, tmp_path):
    builder = _builder(codes['moose'], input_folder=_tree(tmp_path / 'case'))
    builder.metadata.options.input_filename = 'case.i'
    builder.metadata.dry_run = True
    builder.metadata.store_provenance = False
    _, node = run_get_node(builder)
    import pathlib

    folder = pathlib.Path(node.dry_run_info['folder'])
    assert (folder / 'common' / 'solver.i').is_file() and (folder / 'data' / 'boundary.csv').is_file()
    assert '!include common/solver.i' in (folder / 'case.i').read_text()
    assert "'-i' 'case.i' '--color' 'off'" in (folder / '_aiidasubmit.sh').read_text()


@pytest.mark.parametrize(
    ('arguments', 'input_filename', 'match'),
    [
        ({}, 'moose.i', 'give input_file'),
        ({'folder': True}, 'moose.i', r"no file 'moose.i' at its top: .* \(inputs at the top: case.i\)"),
        ({'folder': True}, 'common/solver.i', 'must be a plain file name'),
        ({'folder': True, 'input_file': True}, 'case.i', 'which input_file would overwrite'),
        ({'folder': True, 'files': True}, 'case.i', 'input_folder already holds'),
    ],
)
def test_input_folder_validation(codes, tmp_path, arguments, input_filename, match):
    kwargs = {}
    if arguments.get('folder'):
        kwargs['input_folder'] = _tree(tmp_path / 'case')
    if arguments.get('input_file'):
        kwargs['input_file'] = orm.Str(_input())
    if arguments.get('files'):
        kwargs['files'] = {'clash': _file(b'x', 'data')}
    builder = _builder(codes['moose'], **kwargs)
    builder.metadata.options.input_filename = input_filename
    with pytest.raises(ValueError, match=match):
        run_get_node(builder)


@pytest.mark.parametrize(
    ('arguments', 'message'),
    [
        (['nowhere.i'], 'nowhere.i: no such input file'),
        (['common/solver.i', '--folder', '{root}'], 'is not at the top of --folder'),
        (['case.i', '--folder', '{root}', '--override', 'Outputs/file_base=/tmp/x'], 'cmdline'),
        (['case.i', '--folder', '{root}', '--code', 'nope@nowhere'], '--code'),
    ],
)
def test_cli_errors_before_submission(codes, tmp_path, monkeypatch, arguments, message):
    root = tmp_path / 'case'
    _tree(root)
    monkeypatch.chdir(tmp_path)
    arguments = [argument.format(root=root) for argument in arguments]
    result = CliRunner().invoke(cli, ['launch', 'moose', *arguments])
    assert result.exit_code == 1, result.output
    assert message in result.output and 'Traceback' not in result.output


def test_cli_dry_run(codes, tmp_path):
    root = tmp_path / 'case'
    _tree(root)
    result = CliRunner().invoke(
        cli,
        ['launch', 'moose', str(root / 'case.i'), '--folder', str(root), '--threads', '2', '--dry-run']
        + ['--override', 'Executioner/num_steps=1', '--max-wallclock-seconds', '600'],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    assert summary['input_filename'] == 'case.i' and summary['input_folder'] == str(root)
    assert summary['cmdline'] == ['Executioner/num_steps=1']
    assert summary['options']['max_wallclock_seconds'] == 600 and summary['options']['require_csv'] is False


@pytest.mark.real_code
def test_cli_foreground_run(codes, tmp_path, monkeypatch):
    """`launch moose INPUT --folder DIR`, as a MOOSE user would type it in the input's directory."""
    root = tmp_path / 'case'
    _tree(root)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(cli, ['launch', 'moose', 'case.i', '--folder', '.', '--foreground'])
    assert result.exit_code == 0, result.output
    assert 'postprocessors from the exodus' in result.output
    assert 'average = 0.' in result.output

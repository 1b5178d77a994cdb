"""Tests of the HIT writer: rendering, and refusal of every way a value could inject structure into a MOOSE input."""

from __future__ import annotations

import pathlib
import subprocess

import numpy as np
import pytest

from aiida_multiscale.engines.moose.hit import (
    Expression,
    HitError,
    Variable,
    format_value,
    render_hit,
    validate_cli_argument,
)
from aiida_multiscale.setup import default_executables

pytestmark = pytest.mark.unit


def _diffusion_blocks(xmax):
    return {
        'Mesh': {'gen': {'type': 'GeneratedMeshGenerator', 'dim': 2, 'nx': 4, 'ny': 4, 'xmax': xmax}},
        'Variables': {'u': {}},
        'Kernels': {'diff': {'type': 'Diffusion', 'variable': 'u'}},
        'BCs': {
            'left': {'type': 'DirichletBC', 'variable': 'u', 'boundary': 'left', 'value': 0},
            'right': {'type': 'DirichletBC', 'variable': 'u', 'boundary': 'right', 'value': 1.0},
        },
        'Executioner': {
            'type': 'Steady',
            'solve_type': 'NEWTON',
            'petsc_options_iname': ['-pc_type'],
            'petsc_options_value': ['ilu'],
        },
        'Postprocessors': {
            'width': {'type': 'FunctionValuePostprocessor', 'function': Variable('L')},
            'flux_sum': {
                'type': 'SideDiffusiveFluxIntegral',
                'variable': 'u',
                'boundary': 'right',
                'diffusivity': 1,
                'execute_on': ['initial', 'timestep_end'],
            },
        },
        'Outputs': {'csv': True, 'exodus': True, 'file_base': 'out'},
    }


def test_render_structure():
    text = render_hit(_diffusion_blocks(Expression('2 * L')), variables={'L': 1.5e-3})
    assert text.splitlines()[0] == 'L = 0.0015'
    assert '    xmax = ${fparse 2 * L}\n' in text
    assert "petsc_options_iname = '-pc_type'\n" in text
    assert "execute_on = 'initial timestep_end'\n" in text
    assert '  csv = true\n' in text
    assert text.count('[]') == text.count('[') - text.count('[]')  # every opened block is closed


@pytest.mark.parametrize(
    ('value', 'expected'),
    [
        (True, 'true'),
        (False, 'false'),
        (3, '3'),
        (np.int64(3), '3'),
        (2.5e-9, '2.5e-09'),
        ('GeneratedMeshGenerator', 'GeneratedMeshGenerator'),
        ('eta0^2 + eta1^2', "'eta0^2 + eta1^2'"),
        (['eta0', 'eta1'], "'eta0 eta1'"),
        ((1, 2.5), "'1 2.5'"),
        (np.array([0.0, 1.0]), "'0.0 1.0'"),
        ([[1, 2], [3, 4]], "'1 2; 3 4'"),
        (Expression('a*b'), '${fparse a*b}'),
        (Variable('L'), '${L}'),
    ],
)
def test_format_value(value, expected):
    assert format_value(value) == expected


@pytest.mark.parametrize(
    'value',
    [
        "x' [Outputs] file_base = /tmp/evil #",  # quote closes the string, opens a block
        'a [b]',
        'a]',
        'x # comment',
        'x\nfile_base = evil',
        'x\r',
        '${raw}',  # brace expression only through Expression/Variable
        'a"b',
        'a;b',
        'tab\there',
        float('nan'),
        float('inf'),
        object(),
        [],
        ['two words'],
        ['a', Expression('x')],
    ],
)
def test_refuses_injection_in_values(value):
    with pytest.raises(HitError):
        render_hit({'Outputs': {'file_base': value}})


@pytest.mark.parametrize(
    'value', ['/tmp/evil', '/etc/passwd', ' /x', '~/x', '../x', '../../out', 'a/../../b', 'a/..', '..', ['ok', '/abs']]
)
def test_refuses_paths_outside_the_working_directory(value):
    """A file name that is absolute or climbs out with .. would make MOOSE read or write outside its folder."""
    with pytest.raises(HitError, match=r'Outputs/file_base: string .* is an absolute path or climbs out'):
        render_hit({'Outputs': {'file_base': value}})


@pytest.mark.parametrize('value', ['out', 'data/boundary.csv', 'x / 2', '4 * M / (3 * width)', 'a..b', ['a', 'b/c']])
def test_relative_names_and_divisions_are_written(value):
    assert 'file_base = ' in render_hit({'Outputs': {'file_base': value}})


@pytest.mark.parametrize('name', ['a b', 'a/b', 'a]', '[a', 'x=1', '', 'a\nb', '#'])
def test_refuses_bad_names(name):
    with pytest.raises(HitError, match='name'):
        render_hit({'Outputs': {name: 1}})
    with pytest.raises(HitError, match='name'):
        render_hit({name: {'a': 1}})
    with pytest.raises(HitError, match='name'):
        render_hit({}, variables={name: 1})


@pytest.mark.parametrize('expression', ['a}', 'a} [Mesh]', '', 'x # y', "a'", 'a\nb', '$x', 'a;b'])
def test_refuses_bad_expressions(expression):
    with pytest.raises(HitError, match='fparse'):
        Expression(expression)


def test_error_names_parameter():
    with pytest.raises(HitError, match=r'Materials/free_energy/expression'):
        render_hit({'Materials': {'free_energy': {'expression': 'x # y'}}})


def test_none_is_skipped_and_top_level_scalar_refused():
    assert 'b =' not in render_hit({'A': {'a': 1, 'b': None}})
    with pytest.raises(HitError, match='variables'):
        render_hit({'x': 1})
    with pytest.raises(HitError, match='scalar'):
        render_hit({}, variables={'v': [1, 2]})


@pytest.mark.parametrize('argument', ['--n-threads=2', '--error-unused', 'Outputs/file_base=run1', 'L=2.5e-3'])
def test_cli_argument_accepted(argument):
    assert validate_cli_argument(argument) == argument


@pytest.mark.parametrize(
    'argument',
    [
        '--n-threads=0',
        '--n-threads=x',
        '--mesh-only',
        '--copy-inputs',
        'rm -rf',
        'Outputs/file_base=/etc/passwd',
        'Outputs/file_base=../x',
        "L='1 2'",
        'L=${fparse 1}',
        'a/../b=1',
        'Outputs/file_base=',
        '-i',
        'x=1 y=2',
    ],
)
def test_cli_argument_refused(argument):
    with pytest.raises(HitError):
        validate_cli_argument(argument)


@pytest.mark.real_code
def test_rendered_input_runs_in_moose(tmp_path: pathlib.Path):
    """What the writer produces is valid HIT for MOOSE, and the variable and the fparse expression are evaluated."""
    moose = default_executables()['moose']
    if moose is None:
        pytest.skip('no MOOSE executable')
    (tmp_path / 'input.i').write_text(render_hit(_diffusion_blocks(Expression('2 * L')), variables={'L': 2.0}))
    result = subprocess.run(
        [moose, '-i', 'input.i', '--color', 'off'], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = (tmp_path / 'out.csv').read_text().split()
    header, last = rows[0].split(','), rows[-1].split(',')
    values = dict(zip(header, map(float, last)))
    assert values['width'] == pytest.approx(2.0)
    # u goes 0 -> 1 over the width 2 L = 4: the flux out of the right side is (1/4) * height 1.
    assert abs(values['flux_sum']) == pytest.approx(0.25, rel=1e-6)

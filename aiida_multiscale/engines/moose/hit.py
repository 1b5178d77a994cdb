"""HIT writer: nested mappings -> MOOSE input text, with every name and value validated so nothing can be injected.

MOOSE reads its input in HIT, where ``[`` / ``]`` open and close blocks, ``#`` starts a comment, a newline ends a
value, ``${...}`` is a brace expression evaluated by the parser, and ``Path/param=value`` on the command line
overrides any parameter.  The values we write come partly from users (labels, expressions of parsed materials, file
names), so a string such as ``"x' [Outputs] file_base = /etc/x #"`` must be refused, never written.  Rather than
escape (HIT has no escape sequences inside quotes), we only accept characters that cannot change the structure:

* names of blocks and parameters are identifiers;
* strings are limited to a safe alphabet (no quotes, brackets, ``#``, ``$``, ``;``, newlines or control characters),
  and may not be an absolute path (``/...``, ``~...``) or contain a ``..`` path component, so that no file name can
  point outside the calculation's folder;
* ``${fparse ...}`` and ``${name}`` come only from :class:`Expression` and :class:`Variable`, which validate their own
  content; a plain string containing ``$`` is rejected.

Mappings become blocks (insertion order is kept), everything else becomes a parameter.
"""

from __future__ import annotations

import math
import numbers
import re
import typing as t

__all__ = ('Expression', 'HitError', 'Variable', 'format_value', 'render_hit', 'validate_cli_argument')

#: Parameter and top-level variable names: identifiers (MOOSE parameters are snake_case identifiers).
_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
#: Block names: MOOSE allows ``./name`` (old style) and names such as ``eta0`` or ``top-left``; no ``/``, no spaces.
_BLOCK = re.compile(r'^(\./)?[A-Za-z0-9_][A-Za-z0-9_.\-]*$')
#: Characters allowed in a quoted string value: enough for parsed-function expressions, file names, lists of names.
_SAFE_STRING = re.compile(r'^[A-Za-z0-9_ .,:/+\-*^()<>=!&|%@~]*$')
#: A ``..`` path component: a file name that climbs out of the calculation's folder.
_PARENT = re.compile(r'(^|[/\s])\.\.($|[/\s])')
#: A token that can be written without quotes.
_BARE = re.compile(r'^[A-Za-z0-9_.:/+\-]+$')
#: Characters allowed in an fparse expression (no quotes, braces, ``$`` or ``#``).
_FPARSE = re.compile(r'^[A-Za-z0-9_ .,+\-*/^()<>=!&|]+$')


class HitError(ValueError):
    """A name or value that cannot be written safely to a MOOSE input; the message names the parameter."""


class Expression:
    """A ``${fparse ...}`` brace expression, evaluated by MOOSE's input parser (and overridable on its command line).

    Only this class writes ``${``: its expression may use numbers, operators and names of top-level variables, and
    nothing that could close the brace, start a comment or a block.

    :param expression: e.g. ``'4 * M / (3 * width)'``.
    """

    def __init__(self, expression: str):
        if not isinstance(expression, str) or not expression.strip():
            raise HitError(f'fparse expression must be a non-empty string, got {expression!r}')
        if not _FPARSE.match(expression):
            raise HitError(
                f'fparse expression {expression!r} contains characters other than letters, digits, spaces and '
                'the operators . , + - * / ^ ( ) < > = ! & |'
            )
        self.expression = expression.strip()

    def render(self) -> str:
        return '${fparse ' + self.expression + '}'

    def __repr__(self) -> str:
        return f'Expression({self.expression!r})'


class Variable:
    """A ``${name}`` reference to a top-level HIT variable."""

    def __init__(self, name: str):
        if not isinstance(name, str) or not _NAME.match(name):
            raise HitError(f'variable reference {name!r} must be an identifier')
        self.name = name

    def render(self) -> str:
        return '${' + self.name + '}'

    def __repr__(self) -> str:
        return f'Variable({self.name!r})'


def _format_number(value, where: str) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise HitError(f'{where}: value must be finite, got {value!r}')
        return repr(value)
    raise HitError(f'{where}: not a number: {value!r}')


def _format_scalar(value, where: str, in_list: bool = False) -> str:
    """One value as HIT text, bare (for use inside a quoted list when ``in_list``)."""
    if isinstance(value, (Expression, Variable)):
        if in_list:
            raise HitError(f'{where}: brace expressions cannot be list items')
        return value.render()
    if isinstance(value, (bool, numbers.Real)):
        return _format_number(value, where)
    if isinstance(value, str):
        if not _SAFE_STRING.match(value):
            bad = sorted({c for c in value if not _SAFE_STRING.match(c)})
            raise HitError(
                f'{where}: string {value!r} contains forbidden characters {bad!r}; quotes, brackets, #, $, ;, '
                'newlines and control characters cannot be written into a MOOSE input'
            )
        if value.lstrip().startswith(('/', '~')) or _PARENT.search(value):
            raise HitError(
                f'{where}: string {value!r} is an absolute path or climbs out of the working directory (..); MOOSE '
                "runs in the calculation's folder: name the file relative to it and pass the file with the input"
            )
        if in_list:
            if not value or not _BARE.match(value):
                raise HitError(f'{where}: list item {value!r} must be a single non-empty token without spaces')
            return value
        if _BARE.match(value):
            return value
        return f"'{value}'"
    raise HitError(f'{where}: unsupported value type {type(value).__name__} ({value!r})')


def format_value(value, where: str = 'value') -> str:
    """Format one parameter value: number, bool, string, :class:`Expression`, :class:`Variable` or a list of these.

    Lists are written quoted and space-separated; a list of lists becomes MOOSE's ``;``-separated vector of vectors.
    """
    if isinstance(value, (list, tuple)):
        if not value:
            raise HitError(f'{where}: empty list (omit the parameter instead)')
        if all(isinstance(item, (list, tuple)) for item in value):
            rows = [' '.join(_format_scalar(i, where, in_list=True) for i in row) for row in value]
            return "'" + '; '.join(rows) + "'"
        return "'" + ' '.join(_format_scalar(item, where, in_list=True) for item in value) + "'"
    if hasattr(value, 'tolist') and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        return format_value(value.tolist(), where)
    return _format_scalar(value, where)


def _render_block(name: str, body: t.Mapping, path: str, indent: int, lines: list[str]) -> None:
    if not isinstance(name, str) or not _BLOCK.match(name):
        raise HitError(f'block name {name!r} under {path or "<root>"!r} must be letters, digits, _ . - only')
    here = f'{path}/{name}' if path else name
    pad = '  ' * indent
    lines.append(f'{pad}[{name}]')
    _render_body(body, here, indent + 1, lines)
    lines.append(f'{pad}[]')


def _render_body(body: t.Mapping, path: str, indent: int, lines: list[str]) -> None:
    if not isinstance(body, t.Mapping):
        raise HitError(f'block {path!r} must be a mapping, got {type(body).__name__}')
    pad = '  ' * indent
    for key, value in body.items():
        if isinstance(value, t.Mapping):
            _render_block(key, value, path, indent, lines)
            continue
        if value is None:  # an unset optional parameter: leave MOOSE's default
            continue
        if not isinstance(key, str) or not _NAME.match(key):
            raise HitError(f'parameter name {key!r} in block {path!r} must be an identifier')
        lines.append(f'{pad}{key} = {format_value(value, f"{path}/{key}")}')


def render_hit(blocks: t.Mapping[str, t.Mapping], variables: t.Mapping[str, t.Any] | None = None) -> str:
    """Render MOOSE input text from ``blocks`` (name -> mapping; nested mappings are sub-blocks).

    :param blocks: top-level blocks, e.g. ``{'Mesh': {'type': 'GeneratedMesh', 'dim': 2}, ...}``; ``None`` values are
        skipped so optional parameters can be left to MOOSE's defaults.
    :param variables: top-level variables written first (``name = value``); they can be used in
        :class:`Expression` / :class:`Variable` values and overridden on MOOSE's command line.
    :raises HitError: for any name or value that cannot be written safely.
    """
    lines: list[str] = []
    for key, value in (variables or {}).items():
        if not isinstance(key, str) or not _NAME.match(key):
            raise HitError(f'top-level variable name {key!r} must be an identifier')
        if isinstance(value, (t.Mapping, list, tuple)):
            raise HitError(f'top-level variable {key!r} must be a scalar, got {type(value).__name__}')
        lines.append(f'{key} = {format_value(value, key)}')
    if lines:
        lines.append('')
    if not isinstance(blocks, t.Mapping):
        raise HitError(f'blocks must be a mapping of block name -> mapping, got {type(blocks).__name__}')
    for name, body in blocks.items():
        if not isinstance(body, t.Mapping):
            raise HitError(f'top-level entry {name!r} must be a block (mapping); use `variables` for scalars')
        _render_block(name, body, '', 0, lines)
    return '\n'.join(lines) + '\n'


#: Command-line flags of a MOOSE executable that are safe to pass (no file outputs elsewhere, no shell access).
SAFE_FLAGS = frozenset(
    {
        '--error',
        '--error-unused',
        '-e',
        '--error-deprecated',
        '--error-override',
        '-o',
        '--allow-unused',
        '-w',
        '--check-input',
        '--no-color',
        '--no-timing',
        '--no-trap-fpe',
        '--disable-perf-graph-live',
        '--no-gdb-backtrace',
        '--allow-test-objects',
        '--keep-cout',
    }
)
_OVERRIDE = re.compile(r'^(?P<path>[A-Za-z_][A-Za-z0-9_.\-]*(/[A-Za-z_][A-Za-z0-9_.\-]*)*)=(?P<value>.*)$')
_THREADS = re.compile(r'^--n-threads=(?P<n>[1-9][0-9]{0,3})$')


def validate_cli_argument(argument: str) -> str:
    """Check one MOOSE command-line argument: a known flag, ``--n-threads=N``, or ``Path/param=value``.

    An override's value goes through the same checks as an input-file value, so ``Outputs/file_base=../../x`` with a
    path outside the working directory, or a value with quotes or ``$``, is refused.

    :raises HitError: with the argument and what is allowed.
    """
    if not isinstance(argument, str):
        raise HitError(f'command-line argument {argument!r} must be a string')
    if argument in SAFE_FLAGS or _THREADS.match(argument):
        return argument
    match = _OVERRIDE.match(argument)
    if not match:
        raise HitError(
            f'command-line argument {argument!r} is neither a known flag ({", ".join(sorted(SAFE_FLAGS))}, '
            '--n-threads=N) nor an override Block/param=value'
        )
    value = match.group('value')
    if not value or not _BARE.match(value) or '..' in value or value.startswith('/'):
        raise HitError(
            f'command-line override {argument!r}: the value must be one token of letters, digits and _ . : / + - '
            '(no spaces, quotes, $, absolute paths or ..)'
        )
    for part in match.group('path').split('/'):
        if part in ('.', '..'):
            raise HitError(f'command-line override {argument!r}: invalid parameter path')
    return argument

"""Shared pieces of the ``launch`` commands: submit, wait, the JSON result line, PK arguments, resource flags."""

from __future__ import annotations

import functools
import json
import sys

import click

from aiida_multiscale.resources import FLAGS, RUNGS, options_from_flags

__all__ = ('DRY_RUN', 'echo_error', 'launch', 'load_input_node', 'process_summary', 'resource_options')

DRY_RUN = click.option(
    '--dry-run',
    is_flag=True,
    help='Build and check the inputs, print the metadata.options every rung would be submitted with as JSON, '
    'and submit nothing.',
)


def _flag_option(flag: str, param: str, kind: type, help_text: str):
    if kind is bool:
        default = "[default: the code's with_mpi, else the protocol's]"
        return click.option(f'--{flag}/--no-{flag}', param, default=None, help=f'{help_text} {default}')
    click_type = click.IntRange(min=1) if kind is int else click.STRING
    return click.option(f'--{flag}', param, type=click_type, default=None, help=f'{help_text} [default: protocol]')


def resource_options(rungs: tuple[str, ...] | None = None):
    """Add the resource flags of :data:`aiida_multiscale.resources.FLAGS` to a command, passed to it as ``options``.

    Without ``rungs`` the flags are ``--num-machines`` ... ``--withmpi/--no-withmpi`` and ``options`` is one
    ``metadata.options`` dict; with ``rungs`` every flag is repeated per rung (``--dft-num-machines``,
    ``--phase-field-queue`` ...) and ``options`` is ``{rung: {...}}``.  Only the flags given end up in ``options``, so
    the protocol's values stay for the rest.  Generated, so that the 24 flags of ``launch chain`` cannot drift apart.
    """
    groups = (
        [('', '', '')]
        if rungs is None
        else [(rung, f'{rung.replace("_", "-")}-', f'{RUNGS[rung]}: ') for rung in rungs]
    )

    def decorator(func):
        params = [(rung, name, f'{rung}_{name}' if rung else name) for rung, _, _ in groups for name, _, _ in FLAGS]

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            collected = {rung: {} for rung, _, _ in groups}
            for rung, name, param in params:
                collected[rung][name] = kwargs.pop(param)
            if rungs is None:
                kwargs['options'] = options_from_flags(**collected[''])
            else:
                kwargs['options'] = {rung: options_from_flags(**values) for rung, values in collected.items()}
            return func(*args, **kwargs)

        for rung, prefix, label in reversed(groups):
            for name, kind, help_text in reversed(FLAGS):
                param = f'{rung}_{name}' if rung else name
                help_text = label + help_text.replace('--withmpi', f'--{prefix}withmpi')
                wrapper = _flag_option(prefix + name.replace('_', '-'), param, kind, help_text)(wrapper)
        return wrapper

    return decorator


def echo_error(message: str) -> None:
    """One line on stderr, then exit 1 (no traceback for user errors)."""
    click.echo(f'Error: {message}', err=True)
    sys.exit(1)


def _output_summary(node) -> dict:
    from aiida import orm

    from aiida_multiscale.data.handoff import HandoffData

    if isinstance(node, HandoffData):
        return node.summary()
    if isinstance(node, orm.Dict):
        return {'type': 'Dict', 'uuid': node.uuid, 'keys': sorted(node.keys())}
    if isinstance(node, (orm.Float, orm.Int, orm.Bool, orm.Str)):
        return {'type': type(node).__name__, 'uuid': node.uuid, 'value': node.value}
    return {'type': type(node).__name__, 'uuid': node.uuid}


def process_summary(node) -> dict:
    """The one JSON object of ``--json``: pk, uuid, label, state, exit status/message, and every output summarised."""
    outputs = {}
    for link in node.base.links.get_outgoing(link_type=_return_or_create_links()).all():
        outputs[link.link_label] = _output_summary(link.node)
    state = node.process_state.value if node.process_state else None
    return {
        'pk': node.pk,
        'uuid': node.uuid,
        'process_label': node.process_label,
        'process_state': state,
        'exit_status': node.exit_status,
        'exit_message': node.exit_message,
        'outputs': outputs,
    }


def _return_or_create_links():
    from aiida.common.links import LinkType

    return (LinkType.RETURN, LinkType.CREATE)


def launch(builder, wait: bool, as_json: bool, poll: float = 1.0, dry_run: bool = False) -> None:
    """Submit ``builder`` to the daemon; with ``wait`` follow it and exit non-zero if it did not finish OK.

    The process's port validators run first, so bad input is one line without a traceback and nothing is stored.
    With ``dry_run`` only that happens, and the ``metadata.options`` of every rung are printed as JSON.
    """
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    from aiida_multiscale.resources import builder_options

    error = builder._process_class.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        echo_error(error.message)
    if dry_run:
        summary = {'process_label': builder._process_class.__name__, 'options': builder_options(builder)}
        click.echo(json.dumps(summary))
        return
    if wait and not get_daemon_client().is_daemon_running:
        echo_error('the daemon is not running: start it with `verdi daemon start 2` (or `make daemon`)')
    node = submit(builder)
    if not as_json:
        click.echo(f'Submitted {node.process_label}<{node.pk}>')
    if not wait:
        if as_json:
            click.echo(json.dumps(process_summary(node)))
        return
    from aiida_multiscale.cli.progress import watch

    # Progress per rung from the provenance graph: in place on a terminal, plain lines otherwise; with --json only on
    # a terminal's stderr, so that stdout stays the one JSON object.  Ctrl-C stops watching, not the process.
    if watch(node.pk, interval=poll, err=as_json, plain=not as_json) is None:
        sys.exit(130)
    summary = process_summary(node)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f'{node.process_label}<{node.pk}> {summary["process_state"]} [{node.exit_status}] '
            f'{node.exit_message or ""}'.rstrip()
        )
        for label, value in summary['outputs'].items():
            if 'type' not in value:
                text = ', '.join(
                    f'{name} = {q["value"]:.5g}'
                    + ('' if q['std'] is None else f' +/- {q["std"]:.2g}')
                    + f' {q["unit"]}'
                    for name, q in value.items()
                )
                click.echo(f'  {label}: {text}')
    if not node.is_finished_ok:
        sys.exit(2)


def load_input_node(identifier: str, node_class, output_labels: tuple[str, ...], what: str):
    """Load ``identifier`` (PK or UUID) as a ``node_class`` node, or as that output of a finished process.

    Wherever an option takes a PK it accepts the data node itself or a finished work chain that has such a
    node as output.  Errors name the identifier and what was expected.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(identifier)
    except (NotExistent, MultipleObjectsError, ValueError) as exc:
        echo_error(f'{what}: no node {identifier!r} ({exc})')
    if isinstance(node, node_class):
        return node
    if isinstance(node, orm.ProcessNode):
        if not node.is_finished_ok:
            echo_error(f'{what}: {node.process_label}<{node.pk}> has not finished OK (exit status {node.exit_status})')
        for label in output_labels:
            if label in node.outputs:
                return node.outputs[label]
        echo_error(f'{what}: {node.process_label}<{node.pk}> has none of the outputs {", ".join(output_labels)}')
    echo_error(f'{what}: node {identifier} is a {type(node).__name__}, not a {node_class.__name__} or a work chain')

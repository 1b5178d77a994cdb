"""CLI of the chain: ``launch chain``, ``status``, ``trace`` and ``graph``."""

from __future__ import annotations

import datetime
import json

import click

from aiida_multiscale.cli import cli, cmd_launch
from aiida_multiscale.cli.utils import DRY_RUN, echo_error, launch, resource_options
from aiida_multiscale.resources import RUNGS
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = ('cmd_graph', 'cmd_launch_chain', 'cmd_status', 'cmd_trace', 'status_rows')


def _load_process(identifier: str):
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        node = orm.load_node(identifier)
    except (NotExistent, MultipleObjectsError, ValueError) as exc:
        echo_error(f'no node {identifier!r} ({exc})')
    return node


@cmd_launch.command('chain')
@click.option('--element', required=True, help='Chemical symbol of the cubic metal, e.g. Al.')
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'moderate', 'precise']),
    default=None,
    help=f'Protocol of every rung (default: {load_protocol_file("chain")["default_protocol"]}).',
)
@click.option(
    '--temperature',
    type=float,
    default=None,
    help='Anneal temperature in K (default: '
    f'{load_protocol_file("phase_field")["default_inputs"]["anneal"]["temperature"]["homologous"]} T_melt).',
)
@click.option('--anneal-time', type=float, default=None, help="Anneal time in s (default: the protocol's).")
@click.option(
    '--initial-grain-size',
    type=float,
    default=None,
    help="Starting mean grain size d0 in m, e.g. a recrystallised grain size (default: the protocol's, assumed).",
)
@click.option(
    '--mobility-prefactor',
    type=float,
    default=None,
    help='Grain-boundary mobility prefactor M0 in m^4/(J s), with --activation-energy: the mobility by hand, stored as '
    "an assumption; it switches the MD rung's mobility stage off [default: computed by the MD rung].",
)
@click.option(
    '--activation-energy',
    type=float,
    default=None,
    help='Activation energy Q of the boundary mobility in eV, with --mobility-prefactor [default: computed by MD].',
)
@click.option(
    '--potential',
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help='An EAM potential file (.eam, .eam.alloy, .eam.fs) for the MD rung instead of the default one.',
)
@click.option(
    '--pseudo-family',
    default=None,
    help='aiida-pseudo family label for the DFT rung, e.g. SSSP/1.3/PBE/efficiency [default: multiscale/pbe, or '
    'multiscale/lda where multiscale/pbe lacks the element].',
)
@click.option('--wait', is_flag=True, help='Wait for the chain to finish; exit non-zero if it failed.')
@click.option('--json', 'as_json', is_flag=True, help='Print the result as one JSON line at the end.')
@resource_options(rungs=tuple(RUNGS))
@DRY_RUN
def cmd_launch_chain(
    element,
    protocol,
    temperature,
    anneal_time,
    initial_grain_size,
    mobility_prefactor,
    activation_energy,
    potential,
    pseudo_family,
    wait,
    as_json,
    options,
    dry_run,
):
    """Launch the DFT -> MD -> phase-field -> FEM chain for ELEMENT through the daemon.

    The resource flags are per rung (--dft-num-mpiprocs-per-machine, --md-queue, ...): pw.x may run on many MPI
    ranks while the serial lmp and MOOSE of a workstation may not.
    """
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain
    from aiida_multiscale.workflows.validation import fallback_note

    try:
        builder = MultiscaleWorkChain.get_builder_from_protocol(
            element, protocol=protocol, potential=potential, temperature=temperature, anneal_time=anneal_time,
            pseudo_family=pseudo_family, options=options, initial_grain_size=initial_grain_size,
            mobility_prefactor=mobility_prefactor, activation_energy=activation_energy,
        )  # fmt: skip
    except ValueError as exc:
        echo_error(str(exc))
    if pseudo_family is None and (note := fallback_note([element], builder.dft.pseudo_family.value)):
        click.echo(f'Note: {note}', err=True)  # the LDA fallback and its known bias
    launch(builder, wait, as_json, dry_run=dry_run)


def _wall_time(node) -> float | None:
    """Seconds from creation to the last modification (to now while it runs)."""
    end = node.mtime if node.is_terminated else datetime.datetime.now().astimezone()
    return (end - node.ctime).total_seconds()


def status_rows(chain) -> list[dict]:
    """One row per rung of ``chain`` (planned rungs that have not started yet included), then the chain itself.

    ``calculations`` counts the calculation jobs a rung called and ``cached`` those AiiDA's cache reused instead of
    running them (docs/howto_caching.md).
    """
    from aiida.common.links import LinkType
    from aiida.plugins import WorkflowFactory

    from aiida_multiscale.provenance.caching import cache_summary

    called = {link.link_label: link.node for link in chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()}
    rows = []
    for label in RUNGS:
        cls = WorkflowFactory(f'multiscale.{label}')
        node = called.get(label)
        if node is None:
            rows.append({'rung': label, 'process': cls.__name__, 'pk': None, 'state': 'not started',
                         'exit_status': None, 'wall_time': None, 'calculations': 0, 'cached': 0})  # fmt: skip
            continue
        cache = cache_summary(node)
        rows.append({
            'rung': label, 'process': node.process_label, 'pk': node.pk,
            'state': node.process_state.value if node.process_state else 'created',
            'exit_status': node.exit_status, 'wall_time': _wall_time(node),
            'calculations': cache['calculations'], 'cached': cache['cached'],
        })  # fmt: skip
    rows.append({
        'rung': 'chain', 'process': chain.process_label, 'pk': chain.pk,
        'state': chain.process_state.value if chain.process_state else 'created',
        'exit_status': chain.exit_status, 'wall_time': _wall_time(chain),
        'calculations': sum(row['calculations'] for row in rows), 'cached': sum(row['cached'] for row in rows),
    })  # fmt: skip
    return rows


@cli.command('status')
@click.argument('pk')
@click.option('--json', 'as_json', is_flag=True, help='Print the rows as a JSON list.')
@click.option(
    '--watch',
    is_flag=True,
    help='Follow the process until it ends: one line per rung updated in place on a terminal (plain lines '
    'otherwise), with what is done of what is planned. Ctrl-C stops watching only. Any process PK is accepted; '
    'exit status 2 if it failed.',
)
def cmd_status(pk, as_json, watch):
    """One row per rung of the chain PK: process, state, exit status, wall time and calculations reused from cache.

    With --watch, follow the chain (or any process PK) while it runs instead: SCFs, MD stages, phase-field cycles and
    simulated time, FEM load steps and bridges done of those planned, and the elapsed time per rung.
    """
    node = _load_process(pk)
    if watch:
        _watch(node, as_json)
        return
    if getattr(node, 'process_label', None) != 'MultiscaleWorkChain':
        echo_error(f'node {pk} is not a MultiscaleWorkChain (it is a {type(node).__name__})')
    rows = status_rows(node)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f'{"rung":<12} {"process":<22} {"pk":>7} {"state":<12} {"exit":>5} {"cached":>7} {"wall time":>10}')
    for row in rows:
        wall = '' if row['wall_time'] is None else f'{row["wall_time"]:.1f} s'
        exit_status = '' if row['exit_status'] is None else str(row['exit_status'])
        pk_text = '' if row['pk'] is None else str(row['pk'])
        # cached/total calculation jobs: "7/7" is a rung AiiDA took entirely from its cache.
        cached = f'{row["cached"]}/{row["calculations"]}' if row['calculations'] else ''
        click.echo(
            f'{row["rung"]:<12} {row["process"]:<22} {pk_text:>7} {row["state"]:<12} {exit_status:>5} {cached:>7} '
            f'{wall:>10}'
        )
    if node.is_terminated and not node.is_finished_ok:
        click.echo(f'chain failed: [{node.exit_status}] {node.exit_message}')


def _watch(node, as_json: bool) -> None:
    """``status --watch``: follow ``node``; with ``--json`` the display goes to stderr (only on a terminal) and stdout
    gets one JSON object at the end, as without ``--watch``."""
    import sys

    from aiida import orm

    from aiida_multiscale.cli.progress import watch
    from aiida_multiscale.cli.utils import process_summary

    if not isinstance(node, orm.ProcessNode):
        echo_error(f'node {node.pk} is a {type(node).__name__}, not a process')
    snapshot = watch(node.pk, err=as_json, plain=not as_json)
    if snapshot is None:  # Ctrl-C: the message is out, the processes go on
        sys.exit(130)
    if as_json:
        summary = status_rows(node) if node.process_label == 'MultiscaleWorkChain' else process_summary(node)
        click.echo(json.dumps(summary))
    if not snapshot.finished_ok:
        sys.exit(2)


@cli.command('trace')
@click.argument('pk')
@click.option(
    '--format',
    'fmt',
    type=click.Choice(['text', 'json']),
    default='text',
    show_default=True,
    help='A readable tree, or one JSON object (its keys are listed in the trace how-to of the documentation).',
)
def cmd_trace(pk, fmt):
    """The macro prediction of chain PK (or of a macro node), its handoffs and the DFT calculations behind it."""
    from aiida_multiscale.provenance import render_text, trace, trace_json

    node = _load_process(pk)
    try:
        lineage = trace(node)
    except ValueError as exc:
        echo_error(str(exc))
    if fmt == 'json':
        click.echo(json.dumps(trace_json(lineage), sort_keys=False))
    else:
        click.echo(render_text(lineage))


@cli.command('graph')
@click.argument('pk')
@click.option(
    '-o',
    '--output',
    default='chain.svg',
    show_default=True,
    type=click.Path(dir_okay=False),
    help='Output file; the format follows the suffix (svg, png, pdf).',
)
@click.option('--full', is_flag=True, help='Every node of the chain, not only rungs, bridges and handoffs.')
def cmd_graph(pk, output, full):
    """Draw the provenance graph of chain PK with the handoffs highlighted."""
    from aiida import orm

    from aiida_multiscale.provenance.graph import write_graph

    node = _load_process(pk)
    if not isinstance(node, orm.WorkflowNode):
        echo_error(f'node {pk} is a {type(node).__name__}, not a MultiscaleWorkChain')
    path = write_graph(node, output, full=full)
    click.echo(f'wrote {path}')

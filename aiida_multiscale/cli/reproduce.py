"""``aiida-multiscale reproduce ARCHIVE``: import an archive, rerun each chain from its stored inputs, compare."""

from __future__ import annotations

import json
import math

import click

from aiida_multiscale.cli import cli
from aiida_multiscale.cli.utils import echo_error

__all__ = ('archived_chains', 'check_single_writer', 'cmd_reproduce', 'compare_macro', 'local_runner', 'rebuild_inputs')

CHAIN_PROCESS_TYPE = 'aiida.workflows:multiscale.chain'


def archived_chains(path: str) -> list[str]:
    """UUIDs of the finished-OK MultiscaleWorkChains in the archive at ``path``, oldest first (read from the archive
    itself, so that chains already in the profile before the import are not rerun as well)."""
    from aiida import orm
    from aiida.tools.archive.abstract import get_format

    with get_format().open(path, mode='r') as reader:
        query = reader.querybuilder()
        query.append(
            orm.WorkflowNode,
            filters={'process_type': CHAIN_PROCESS_TYPE, 'attributes.exit_status': 0},
            project=['uuid'],
        )
        query.order_by({orm.WorkflowNode: {'ctime': 'asc'}})
        return [uuid for (uuid,) in query.iterall()]


def _usable_code(code, log) -> object:
    """``code`` if it can run here, else the profile's code for the same plugin on a computer set up for this user.

    An imported code keeps the computer of the machine that made the archive, which is not set up here; the same
    executable (pw.x, lmp, moose) made by ``aiida-multiscale setup`` takes its place, and the substitution is printed.
    """
    from aiida import orm

    user = orm.User.collection.get_default()
    computer = getattr(code, 'computer', None)
    if computer is None or computer.is_user_configured(user):
        return code
    plugin = code.default_calc_job_plugin
    query = orm.QueryBuilder()
    query.append(orm.AbstractCode, filters={'attributes.input_plugin': plugin}, project='*')
    candidates = [candidate for (candidate,) in query.iterall() if candidate.uuid != code.uuid]
    candidates = [
        candidate
        for candidate in candidates
        if getattr(candidate, 'computer', None) is not None and candidate.computer.is_user_configured(user)
    ]
    if not candidates:
        echo_error(
            f'the archived code {code.full_label} ({plugin}) runs on computer {computer.label!r}, which is not set up '
            'here, and the profile has no other code for that plugin: run `aiida-multiscale setup` first'
        )
    candidates.sort(key=lambda candidate: (candidate.label != code.label, candidate.pk))
    replacement = candidates[0]
    log(f'code {code.full_label} (archived) -> {replacement.full_label} (this machine)')
    return replacement


def _swap_codes(inputs: dict, log) -> None:
    from aiida import orm

    for key, value in inputs.items():
        if isinstance(value, dict):
            _swap_codes(value, log)
        elif isinstance(value, orm.AbstractCode):
            inputs[key] = _usable_code(value, log)


def rebuild_inputs(chain, log=lambda message: None):
    """A builder with the stored inputs of ``chain``: every input node and the ``metadata`` it was launched with
    (resources, walltimes), codes swapped for this machine's where the archived computer is not set up here."""
    from aiida.common.links import LinkType

    inputs = chain.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).nested()
    chain.recursive_merge(inputs, chain.get_metadata_inputs() or {})
    _swap_codes(inputs, log)
    metadata = inputs.setdefault('metadata', {})
    metadata['label'] = f'{chain.label or "chain"} (reproduced)'
    metadata['description'] = f'Rerun with caching off of MultiscaleWorkChain {chain.uuid} from its archived inputs.'
    builder = chain.process_class.get_builder()
    builder._update(inputs)
    return builder


def check_single_writer(log=lambda message: None) -> None:
    """Refuse, before anything is imported, to write into SQLite storage while the profile's daemon runs processes.

    SQLite takes one writer at a time, and a connection waits only 5 s for the lock (the default of Python's
    ``sqlite3``, which aiida-core keeps).  The import of an archive is one transaction that holds the lock for its whole
    length, tens of seconds for a chain on a busy machine; every write the daemon attempts meanwhile fails with
    ``database is locked`` and its process excepts.  PostgreSQL has no such limit, so only SQLite profiles are checked.
    """
    from aiida import orm
    from aiida.engine.daemon.client import get_daemon_client
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    if 'sqlite' not in profile.storage_backend:
        return
    try:
        daemon_running = get_daemon_client(profile.name).is_daemon_running
    except Exception:  # no daemon configured for this profile: nothing else writes
        daemon_running = False
    if not daemon_running:
        return
    active = (
        orm.QueryBuilder()
        .append(orm.ProcessNode, filters={'attributes.process_state': {'in': ['created', 'waiting', 'running']}})
        .count()
    )
    if active:
        echo_error(
            f'profile {profile.name!r} keeps its data in SQLite ({profile.storage_backend}), which takes one writer '
            f'at a time, and its daemon is running {active} process(es): importing the archive would make their writes '
            'fail with "database is locked". Wait until `verdi process list` is empty or stop the daemon (`verdi '
            'daemon stop`; reproduce runs without it), then rerun'
        )
    log(f'profile {profile.name!r} is on SQLite: its daemon is idle, so the import is the only writer')


def local_runner():
    """A runner of this process without a broker connection, made the global one, so that everything the reproduced
    chain launches (sub work chains, calculations, calcfunctions) runs here, and nothing waits for a broker.

    The embedded profile's ZeroMQ broker lives in its daemon: with the default runner, ``reproduce`` would need the
    daemon running, and would run beside its workers.  A process of this runner cannot be paused or killed with
    ``verdi process``; interrupt the command instead.
    """
    from aiida.manage import get_manager

    manager = get_manager()
    runner = manager.create_runner(communicator=None)
    manager.set_runner(runner)
    return runner


def compare_macro(archived: dict, reproduced: dict, stds: float, rtol: float) -> list[dict]:
    """One row per macro quantity: archived and reproduced value, the difference in stds, and the verdict.

    A quantity is reproduced when the difference is within ``stds`` times its stated std (the archived one; both
    combined in quadrature when the reproduction states one too) or within ``rtol`` of its value, whichever is larger,
    so that a quantity without a std must agree to ``rtol``.
    """
    rows = []
    for name, spec in archived.items():
        other = reproduced.get(name)
        row = {'quantity': name, 'unit': spec.get('unit'), 'archived': spec['value'], 'archived_std': spec.get('std')}
        if other is None:
            rows.append({**row, 'reproduced': None, 'reproduced_std': None, 'difference_stds': None,
                         'tolerance': None, 'verdict': 'missing'})  # fmt: skip
            continue
        difference = abs(other['value'] - spec['value'])
        std = math.hypot(spec.get('std') or 0.0, other.get('std') or 0.0)
        tolerance = max(stds * std, rtol * abs(spec['value']))
        rows.append({
            **row, 'reproduced': other['value'], 'reproduced_std': other.get('std'),
            'difference_stds': difference / std if std else None, 'tolerance': tolerance,
            'verdict': 'reproduced' if difference <= tolerance else 'differs',
        })  # fmt: skip
    return rows


def _format_row(row: dict) -> str:
    def value(number, std):
        if number is None:
            return '-'
        return f'{number:.6g}' + ('' if std is None else f' +/- {std:.2g}')

    stds = '-' if row['difference_stds'] is None else f'{row["difference_stds"]:.3g}'
    unit = '' if row['unit'] in (None, 'dimensionless', '1') else f' [{row["unit"]}]'
    return (
        f'{row["quantity"] + unit:<30} {value(row["archived"], row["archived_std"]):>24} '
        f'{value(row["reproduced"], row["reproduced_std"]):>24} {stds:>12}  {row["verdict"]}'
    )


@cli.command('reproduce')
@click.argument('archive', type=click.Path(exists=True, dir_okay=False))
@click.option(
    '--stds',
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help='Tolerance of each macro quantity in units of its stated std.',
)
@click.option(
    '--rtol',
    type=click.FloatRange(min=0),
    default=1e-6,
    show_default=True,
    help='Relative tolerance for quantities whose std is zero or unknown (and the floor for the others).',
)
@click.option('--chain', 'only', multiple=True, help='UUID of a chain of the archive to rerun (default: all).')
@click.option('--json', 'as_json', is_flag=True, help='Print one JSON object instead of the table.')
def cmd_reproduce(archive, stds, rtol, only, as_json):
    """Import ARCHIVE into the profile, rerun each of its chains from the stored inputs with caching off, and compare.

    Prints, per macro quantity: archived value, reproduced value, the difference in stds and the verdict.  Exits 1
    when a quantity differs by more than its tolerance (--stds times its std, at least --rtol of its value).  The
    chains run in this process, not the daemon, so that caching is off for every calculation without changing the
    profile's configuration; they need neither the daemon nor the broker.  Codes of a computer not set up here are
    replaced by this profile's codes for the same plugin.  On SQLite storage (one writer at a time) the command refuses
    to start while the profile's daemon runs processes, whose writes the import would make fail.
    """
    from aiida import orm
    from aiida.common.exceptions import CorruptStorage, IncompatibleStorageSchema, UnreachableStorage
    from aiida.manage.caching import disable_caching
    from aiida.tools.archive.imports import import_archive

    def log(message: str) -> None:
        click.echo(message, err=as_json)

    try:
        uuids = archived_chains(archive)
    except (CorruptStorage, IncompatibleStorageSchema, UnreachableStorage) as exc:
        echo_error(
            f'{archive} is not an archive this aiida-core can read ({exc}): give a file made by `verdi archive '
            'create`; an archive of an older aiida-core is updated by `verdi archive migrate`'
        )
    if only:
        missing = sorted(set(only) - set(uuids))
        if missing:
            echo_error(f'the archive has no finished chain {", ".join(missing)} (it has {", ".join(uuids) or "none"})')
        uuids = [uuid for uuid in uuids if uuid in only]
    if not uuids:
        echo_error(f'{archive} holds no MultiscaleWorkChain that finished OK')
    check_single_writer(log)
    log(f'importing {archive} ...')
    import_archive(archive)
    runner = local_runner()
    results, failed = [], False
    for uuid in uuids:
        chain = orm.load_node(uuid)
        builder = rebuild_inputs(chain, log)
        log(f'rerunning MultiscaleWorkChain {uuid} with caching off (in this process) ...')
        with disable_caching():
            _, node = runner.run_get_node(builder)
        result = {'archived_chain': uuid, 'reproduced_chain': node.uuid, 'reproduced_pk': node.pk}
        if not node.is_finished_ok:
            result.update(exit_status=node.exit_status, exit_message=node.exit_message, quantities=[])
            failed = True
        else:
            rows = compare_macro(chain.outputs.macro.quantities, node.outputs.macro.quantities, stds, rtol)
            result['quantities'] = rows
            failed = failed or any(row['verdict'] != 'reproduced' for row in rows)
        results.append(result)
        if not as_json:
            click.echo(f'\nchain {uuid} -> reproduced as MultiscaleWorkChain<{node.pk}> {node.uuid}')
            if not node.is_finished_ok:
                click.echo(f'  the rerun failed: [{node.exit_status}] {node.exit_message}')
                continue
            header = f'{"macro quantity":<30} {"archived":>24} {"reproduced":>24} {"diff [std]":>12}  verdict'
            click.echo(header)
            click.echo('-' * len(header))
            for row in result['quantities']:
                click.echo(_format_row(row))
    if as_json:
        click.echo(json.dumps({'archive': str(archive), 'reproduced': not failed, 'chains': results}))
    elif failed:
        click.echo('\nNOT reproduced: see the verdicts above.')
    else:
        click.echo('\nreproduced: every macro quantity within its tolerance.')
    if failed:
        raise SystemExit(1)

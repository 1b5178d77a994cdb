"""``aiida-multiscale demo``: the fast Al chain through the daemon, progress while it runs, then trace and pictures."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cli

__all__ = ('cmd_demo', 'run_demo', 'wait_for_chain')


def wait_for_chain(chain, timeout: float) -> bool:
    """Show how far every rung has got until ``chain`` terminates: in place on a terminal, one plain line per change
    otherwise (:mod:`aiida_multiscale.cli.progress`).  False after ``timeout`` s or on Ctrl-C; the chain goes on."""
    from aiida_multiscale.cli.progress import WATCH_AGAIN, watch

    snapshot = watch(chain.pk, timeout=timeout)
    if snapshot is None:  # Ctrl-C: the message says how to watch again
        return False
    if not snapshot.terminated:
        print(
            f'MultiscaleWorkChain<{chain.pk}> did not finish in {timeout:.0f} s; it goes on in the daemon: '
            f'{WATCH_AGAIN.format(pk=chain.pk)}'
        )
        return False
    return True


def run_demo(
    element: str = 'Al',
    protocol: str = 'fast',
    folder: str = 'demo_output',
    timeout: float = 2400,
    overrides: dict | None = None,
) -> int:
    """Submit the chain to the daemon, show progress, then print the trace and write the pictures; 0 on success.

    Needs a loaded profile.  ``overrides`` go to :meth:`MultiscaleWorkChain.get_builder_from_protocol`, e.g. a smaller
    phase field ``{'phase_field': {'overrides': {'parameters': {'grid': 40, 'grains': 12, 'min_grains': 6}}}}``.
    """
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    from aiida_multiscale.provenance import render_text, trace

    if not get_daemon_client().is_daemon_running:
        print('The daemon is not running: start it with `verdi daemon start 2`.')
        return 1
    from aiida_multiscale.workflows.chain import MultiscaleWorkChain

    builder = MultiscaleWorkChain.get_builder_from_protocol(element, protocol=protocol, overrides=overrides)
    chain = submit(builder)
    print(f'Submitted MultiscaleWorkChain<{chain.pk}> ({element}, {protocol}) to the daemon.', flush=True)
    if not wait_for_chain(chain, timeout):
        return 1
    if not chain.is_finished_ok:
        print(f'MultiscaleWorkChain<{chain.pk}> failed: [{chain.exit_status}] {chain.exit_message}')
        return 1
    print()
    print(render_text(trace(chain)))
    print()
    from aiida_multiscale.provenance.pictures import write_pictures

    for path in write_pictures(chain, folder):
        print(f'wrote {path}')
    print(f'\nNext: aiida-multiscale status {chain.pk}; aiida-multiscale trace {chain.pk} --format json')
    return 0


@cli.command('demo')
@click.option('--element', default='Al', show_default=True, help='Chemical symbol of the cubic metal.')
@click.option(
    '--protocol',
    type=click.Choice(['fast', 'moderate', 'precise']),
    default='fast',
    show_default=True,
    help='Protocol of every rung.',
)
@click.option(
    '--output-folder',
    type=click.Path(file_okay=False),
    default='demo_output',
    show_default=True,
    help='Where the graph SVG, the grain maps, the stress map and the EOS fit are written.',
)
@click.option(
    '--timeout',
    type=click.FloatRange(min=0),
    default=2400,
    show_default=True,
    help='Seconds to wait for the chain before giving up (the chain keeps running in the daemon).',
)
def cmd_demo(element, protocol, output_folder, timeout):
    """Run the chain (fast Al by default) through the running daemon and show what it gives.

    Shows how far every rung has got while it runs, then the trace of the macroscopic result back to the DFT inputs,
    and writes the provenance graph and pictures to the output folder.  Exits non-zero if the daemon is not running or
    the chain fails.  make demo sets everything up and runs this.
    """
    raise SystemExit(run_demo(element, protocol, output_folder, timeout))

"""``aiida-multiscale demo``: the fast Al chain through the daemon, progress while it runs, then trace and pictures."""

from __future__ import annotations

import pathlib

import click

from aiida_multiscale.cli import cli

__all__ = ('cmd_demo', 'eos_points', 'run_demo', 'wait_for_chain', 'write_pictures')


def eos_points(dft) -> list[tuple[float, float]]:
    """(volume per atom [A^3], energy per atom [eV]) of every isotropically scaled SCF of a DftWorkChain.

    The strained cells of the elastic stage are not isotropic scalings of the equilibrium cell and are left out.
    """
    import numpy as np
    from aiida import orm

    reference = np.array(dft.outputs.structure.cell)
    points = []
    for calc in dft.called_descendants:
        if not isinstance(calc, orm.CalcJobNode) or not calc.is_finished_ok or 'output_parameters' not in calc.outputs:
            continue
        structure = calc.inputs.structure
        cell = np.array(structure.cell)
        mask = np.abs(reference) > 1e-8
        ratio = cell[mask] / reference[mask]
        if np.ptp(ratio) > 1e-6 or np.any(np.abs(cell[~mask]) > 1e-8):
            continue
        natoms = len(structure.sites)
        points.append((structure.get_cell_volume() / natoms, calc.outputs.output_parameters['energy'] / natoms))
    return sorted(points)


def _plot_eos(dft, path: pathlib.Path) -> pathlib.Path:
    import matplotlib

    matplotlib.use('Agg')
    import numpy as np
    from ase.eos import birchmurnaghan
    from matplotlib import pyplot as plt

    eos = dft.outputs.eos
    points = np.array(eos_points(dft))
    e0, v0 = eos.value('e0', 'eV'), eos.value('v0', 'angstrom**3')
    # ase's Birch-Murnaghan (the form the DFT rung fits with) takes B0 in eV/A^3.
    b0, bp = eos.value('bulk_modulus', 'eV/angstrom^3'), eos.value('bulk_modulus_derivative', '')
    grid = np.linspace(points[:, 0].min() * 0.99, points[:, 0].max() * 1.01, 200)
    figure, axes = plt.subplots(figsize=(5, 3.6))
    axes.plot(points[:, 0], (points[:, 1] - e0) * 1e3, 'o', label='pw.x SCF')
    axes.plot(grid, (birchmurnaghan(grid, e0, b0, bp, v0) - e0) * 1e3, '-', label='Birch-Murnaghan fit')
    axes.set_xlabel('volume per atom (A^3)')
    axes.set_ylabel('E - E0 (meV/atom)')
    axes.set_title(f'a0 = {eos.value("a0", "angstrom"):.4f} A, B0 = {eos.value("bulk_modulus", "GPa"):.1f} GPa')
    axes.legend()
    figure.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(figure)
    return path


def write_pictures(chain, folder) -> list[pathlib.Path]:
    """Graph SVG, grain maps before/after, the FEM stress map and the DFT EOS fit of a finished chain, in ``folder``."""
    from aiida.common.links import LinkType

    from aiida_multiscale.provenance.graph import write_graph

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_graph(chain, folder / 'chain.svg')]
    if 'initial_microstructure' in chain.outputs:
        written.append(chain.outputs.initial_microstructure.write_png(folder / 'grains_before.png'))
    if 'microstructure' in chain.outputs:
        written.append(chain.outputs.microstructure.write_png(folder / 'grains_after.png'))
    if 'stress_map' in chain.outputs:
        path = folder / 'stress_map.png'
        path.write_bytes(chain.outputs.stress_map.get_content(mode='rb'))
        written.append(path)
    rungs = {link.link_label: link.node for link in chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()}
    if 'dft' in rungs and rungs['dft'].is_finished_ok:
        written.append(_plot_eos(rungs['dft'], folder / 'eos_fit.png'))
    return written


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
    timeout: float = 900,
    overrides: dict | None = None,
) -> int:
    """Submit the chain to the daemon, show progress, then print the trace and write the pictures; 0 on success.

    Needs a loaded profile.  ``overrides`` go to :meth:`MultiscaleWorkChain.get_builder_from_protocol`, e.g. a smaller
    phase field ``{'phase_field': {'overrides': {'parameters': {'grid': 40, 'grains': 6}}}}`` (the size of the chain
    test).
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
    default=900,
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

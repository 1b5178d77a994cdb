"""Pictures of a finished chain, read from its provenance: the graph, grain maps, stress map and the EOS fit.

Used by ``aiida-multiscale demo`` (files in a folder) and by the web view (one picture per request).
"""

from __future__ import annotations

import pathlib

__all__ = ('eos_points', 'plot_eos', 'write_pictures')


def eos_points(dft) -> list[tuple[float, float]]:
    """(volume per atom [A^3], energy per atom [eV]) of the SCFs that the DFT rung's EOS fit was made from.

    Read from the inputs of the calcfunction that created the ``eos`` output (``structure_<i>``,
    ``output_parameters_<i>``), so that the picture shows exactly the fitted points: not the strained cells of the
    elastic stage, whose zero-strain cell has the equilibrium volume but may use another k-mesh (and so another
    energy), nor the points of an EOS grid that was re-centred away from.
    """
    from aiida.common.links import LinkType

    creator = dft.outputs.eos.base.links.get_incoming(link_type=LinkType.CREATE).one().node
    inputs = {link.link_label: link.node for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC)}
    points = []
    for label, structure in inputs.items():
        if not label.startswith('structure_'):
            continue
        parameters = inputs.get('output_parameters_' + label[len('structure_') :])
        if parameters is None:
            continue
        natoms = len(structure.sites)
        points.append((structure.get_cell_volume() / natoms, parameters['energy'] / natoms))
    return sorted(points)


def plot_eos(dft, path: pathlib.Path) -> pathlib.Path:
    """PNG of the DFT rung's E(V) points with its Birch-Murnaghan fit."""
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
    """Graph SVG, grain maps, FEM stress map, flow curves, variance budget and DFT EOS fit of a chain, in ``folder``."""
    from aiida.common.links import LinkType

    from aiida_multiscale.provenance.graph import write_graph

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [write_graph(chain, folder / 'chain.svg')]
    if 'initial_microstructure' in chain.outputs:
        written.append(chain.outputs.initial_microstructure.write_png(folder / 'grains_before.png'))
    if 'microstructure' in chain.outputs:
        written.append(chain.outputs.microstructure.write_png(folder / 'grains_after.png'))
    for output, filename in (
        ('grain_growth_plot', 'grain_growth.png'),
        ('stress_map', 'stress_map.png'),
        ('flow_curve_plot', 'flow_curves.png'),
        ('variance_budget_plot', 'variance_budget.png'),
    ):
        if output in chain.outputs:
            path = folder / filename
            path.write_bytes(chain.outputs[output].get_content(mode='rb'))
            written.append(path)
    rungs = {link.link_label: link.node for link in chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()}
    if 'dft' in rungs and rungs['dft'].is_finished_ok:
        written.append(plot_eos(rungs['dft'], folder / 'eos_fit.png'))
    return written

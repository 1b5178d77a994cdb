"""Pictures of a finished chain, read from its provenance: the graph, grain maps, stress map and the EOS fit.

Used by ``aiida-multiscale demo`` (files in a folder) and by the web view (one picture per request).
"""

from __future__ import annotations

import pathlib

__all__ = ('arrhenius_curve', 'eos_points', 'plot_arrhenius', 'plot_boundary_motion', 'plot_eos', 'write_pictures')


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


def plot_boundary_motion(gb_mobility, path: pathlib.Path) -> pathlib.Path:
    """PNG of the mean boundary displacement against time of every driven run of the MD rung's mobility stage.

    One colour per temperature; replicas solid, the u0/2 run dashed, the reversed run dotted (it moves the other way).
    Read from ``gb_mobility.metadata['runs']`` (the trajectories, thinned to at most 200 points per run).
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    runs = gb_mobility.metadata['runs']
    temperatures = sorted({run['temperature'] for run in runs})
    colours = plt.get_cmap('plasma')
    styles = {'replica': '-', 'half_force': '--', 'reversed': ':'}
    figure, axes = plt.subplots(figsize=(5.5, 3.8))
    labelled = set()
    for run in runs:
        index = temperatures.index(run['temperature'])
        colour = colours(0.8 * index / max(len(temperatures) - 1, 1))
        key = (run['temperature'], run['role'])
        label = f'{run["temperature"]:g} K' + ('' if run['role'] == 'replica' else f', {run["role"].replace("_", " ")}')
        axes.plot(
            run['time_ps'], run['boundary_displacement_angstrom'], styles[run['role']], color=colour, lw=1,
            label=None if key in labelled else label,
        )  # fmt: skip
        labelled.add(key)
    axes.axhline(0.0, color='0.6', lw=0.5)
    axes.set_xlabel('time with the driving force (ps)')
    axes.set_ylabel('boundary displacement into grain 1 (A)')
    u0 = gb_mobility.metadata['u0_ev_per_atom']
    axes.set_title(f'fix orient/eco, u0 = {u0:g} eV/atom, {gb_mobility.metadata["natoms"]} atoms')
    axes.legend(fontsize=7, ncol=2)
    figure.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(figure)
    return path


def arrhenius_curve(fit: dict, inverse_temperatures):
    """ln M of the fit and its 1-std band at ``inverse_temperatures`` (1000/T in 1/K), from ``metadata['arrhenius']``
    of a ``gb_mobility`` handoff: var(ln M) = C00 - 2 x C01 + x^2 C11 with x = 1/(k_B T)."""
    import numpy as np

    x = np.asarray(inverse_temperatures, dtype=float) / (1000.0 * fit['boltzmann_constant_ev_per_k'])
    covariance = np.array(fit['covariance'])
    line = fit['ln_prefactor'] - fit['activation_energy'] * x
    band = np.sqrt(covariance[0, 0] - 2 * x * covariance[0, 1] + x**2 * covariance[1, 1])
    return line, band


def plot_arrhenius(gb_mobility, path: pathlib.Path) -> pathlib.Path:
    """PNG of ln M against 1/T: the per-temperature mobilities with their stds and the weighted fit with its 1-std
    band (from the covariance of ln M0 and Q)."""
    import matplotlib

    matplotlib.use('Agg')
    import numpy as np
    from matplotlib import pyplot as plt

    rows = gb_mobility.metadata['temperatures']
    fit = gb_mobility.metadata['arrhenius']
    temps = np.array([r['temperature'] for r in rows])
    mobility = np.array([r['mobility'] for r in rows])
    ln_std = np.array([r['ln_std'] for r in rows])
    inverse = 1000.0 / temps
    grid = np.linspace(inverse.min() - 0.05, inverse.max() + 0.05, 100)
    line, band = arrhenius_curve(fit, grid)
    covariance = np.array(fit['covariance'])
    figure, axes = plt.subplots(figsize=(5, 3.6))
    axes.errorbar(inverse, np.log(mobility), yerr=ln_std, fmt='o', capsize=3, label='driven MD (replicas combined)')
    axes.plot(grid, line, '-', label=f'fit: Q = {fit["activation_energy"]:.3g} +- {np.sqrt(covariance[1, 1]):.2g} eV')
    axes.fill_between(grid, line - band, line + band, alpha=0.25, lw=0)
    axes.set_xlabel('1000 / T (1/K)')
    axes.set_ylabel('ln M (M in m^4/(J s))')
    axes.set_title('Sigma5(310)[001] boundary mobility')
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(figure)
    return path


def write_pictures(chain, folder) -> list[pathlib.Path]:
    """Graph SVG, grain maps, FEM stress map, flow curves, variance budget, DFT EOS fit and, when the MD rung computed
    the mobility, the boundary motion and Arrhenius plot of a chain, in ``folder``."""
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
    if 'md' in rungs and 'gb_mobility' in rungs['md'].outputs:
        written.append(plot_boundary_motion(rungs['md'].outputs.gb_mobility, folder / 'boundary_motion.png'))
        written.append(plot_arrhenius(rungs['md'].outputs.gb_mobility, folder / 'mobility_arrhenius.png'))
    return written

"""The variance budget as a picture: the share of each uncertain input in each macro quantity's variance."""

from __future__ import annotations

from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.workflows.functions.png import figure_node

__all__ = ('variance_budget_plot',)

#: Macro quantities drawn, in this order, when their budget exists.
_SHOWN = ('youngs_modulus', 'yield_strength', 'flow_stress', 'mean_grain_size')


@calcfunction
def variance_budget_plot(macro: HandoffData):
    """PNG of horizontal bars, one panel per macro quantity: each input's share of its first-order variance.

    Inputs in ln units (mobility, assumptions with a ln std) are marked ``(ln)``; the sampling spread over
    realisations is ``realisations``; the largest share of all (the weakest input) is drawn in a darker colour.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    budgets = {entry['macro_quantity']: entry for entry in macro.metadata.get('variance_budget', [])}
    names = [name for name in _SHOWN if name in budgets] or list(budgets)[:4]
    weakest = macro.metadata.get('weakest') or {}
    figure, axes = plt.subplots(len(names), 1, figsize=(6.4, 1.0 + 1.6 * len(names)), squeeze=False)
    for axis, name in zip(axes[:, 0], names):
        entries = [entry for entry in budgets[name]['entries'] if entry['share'] is not None][:8][::-1]
        labels = [entry['quantity'] + (' (ln)' if entry['log'] else '') for entry in entries]
        shares = [100 * entry['share'] for entry in entries]
        colours = [
            '#b35806'
            if weakest.get('macro_quantity') == name and weakest.get('quantity') == entry['quantity']
            else '#f1a340'
            for entry in entries
        ]
        axis.barh(labels, shares, color=colours)
        relative = budgets[name]['relative_std']
        axis.set_title(f'{name}: relative std {relative:.2g}' if relative is not None else name, fontsize=9)
        axis.set_xlim(0, 100)
        axis.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel('share of the first-order variance (%)')
    figure.tight_layout()
    return figure_node(figure, 'variance_budget.png', tight=False)

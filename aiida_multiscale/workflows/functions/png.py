"""One way to store a matplotlib figure as a PNG node, for the calcfunctions that draw a rung's pictures."""

from __future__ import annotations

import io

from aiida import orm

__all__ = ('figure_node',)


def figure_node(figure, filename: str, dpi: int = 100, tight: bool = True) -> orm.SinglefileData:
    """The figure as an (unstored) ``SinglefileData`` PNG named ``filename``; the figure is closed."""
    from matplotlib import pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=dpi, **({'bbox_inches': 'tight'} if tight else {}))
    plt.close(figure)
    buffer.seek(0)
    return orm.SinglefileData(buffer, filename=filename)

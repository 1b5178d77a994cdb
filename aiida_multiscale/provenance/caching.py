"""Which calculations of a process AiiDA took from its cache, and from which node.

AiiDA marks a node made from the cache with the extra ``_aiida_cached_from`` (the source's UUID); this module only
collects those marks over the calculations a rung called, so that ``status`` and ``trace`` can say which rung was
reused instead of rerun.
"""

from __future__ import annotations

from aiida import orm

__all__ = ('cache_summary', 'called_calculations')


def called_calculations(process: orm.ProcessNode) -> list[orm.CalcJobNode]:
    """Every calculation job ``process`` called, directly or through sub-workflows, oldest first.

    Follows CALL links only: a query over all descendants would also reach, through the rung's returned data, the
    calculations of the next rungs.
    """
    found, stack = [], [process]
    while stack:
        node = stack.pop()
        for child in node.called:
            if isinstance(child, orm.CalcJobNode):
                found.append(child)
            elif isinstance(child, orm.WorkflowNode):
                stack.append(child)
    return sorted(found, key=lambda n: (n.ctime, n.uuid))


def cache_summary(process: orm.ProcessNode) -> dict:
    """``{'calculations': n, 'cached': m, 'sources': {uuid: source uuid}}`` over :func:`called_calculations`."""
    calculations = called_calculations(process)
    sources = {}
    for calc in calculations:
        source = calc.base.caching.get_cache_source()
        if source is not None:
            sources[calc.uuid] = source
    return {'calculations': len(calculations), 'cached': len(sources), 'sources': sources}

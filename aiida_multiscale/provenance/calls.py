"""The call tree of a process in a handful of queries: every process it called, with state, rung and cache source.

A chain calls four rungs, which call restart chains, which call calculations: walking that tree node by node
(``node.called``, ``node.caller``) costs one query per node, which on a chain of a few hundred processes is most of the
time a page or a trace takes.  Here aiida's ``traverse_graph`` follows the CALL links one generation per query and one
``QueryBuilder`` projects what is shown of every process found.
"""

from __future__ import annotations

import dataclasses
import datetime

from aiida import orm
from aiida.common.links import LinkType

__all__ = ('CallTree', 'ProcessRow', 'call_tree')

#: The attributes projected for every process (no node is loaded as an ORM object).
_PROJECT = (
    'id',
    'uuid',
    'node_type',
    'process_type',
    'label',
    'ctime',
    'mtime',
    'attributes.process_label',
    'attributes.process_state',
    'attributes.exit_status',
    'attributes.exit_message',
    'extras._aiida_cached_from',
)


@dataclasses.dataclass
class ProcessRow:
    """One process of the tree as plain values: enough for a table row, a status line or a graph node."""

    pk: int
    uuid: str
    node_type: str
    process_type: str | None
    label: str
    ctime: datetime.datetime
    mtime: datetime.datetime
    process_label: str | None
    process_state: str | None
    exit_status: int | None
    exit_message: str | None
    cached_from: str | None
    caller: int | None = None
    call_label: str | None = None

    @property
    def is_calcjob(self) -> bool:
        return self.node_type.startswith('process.calculation.calcjob.')

    @property
    def is_workflow(self) -> bool:
        return self.node_type.startswith('process.workflow.')

    @property
    def is_terminated(self) -> bool:
        return self.process_state in ('finished', 'excepted', 'killed')

    @property
    def wall_time(self) -> float | None:
        """Seconds from creation to the last change (to now while it runs)."""
        end = self.mtime if self.is_terminated else datetime.datetime.now().astimezone()
        return (end - self.ctime).total_seconds()


@dataclasses.dataclass
class CallTree:
    """The processes under ``root`` by PK, and for each the PKs it called, in creation order."""

    root: int
    rows: dict[int, ProcessRow]
    children: dict[int, list[int]]

    def descendants(self, pk: int) -> list[ProcessRow]:
        """Every process under ``pk`` (not ``pk`` itself), depth first, children in creation order."""
        found, stack = [], list(reversed(self.children.get(pk, [])))
        while stack:
            child = stack.pop()
            found.append(self.rows[child])
            stack.extend(reversed(self.children.get(child, [])))
        return found

    def calcjobs(self, pk: int) -> list[ProcessRow]:
        """The calculation jobs under ``pk``, oldest first (ctime, then UUID: both survive an archive round trip)."""
        return sorted((row for row in self.descendants(pk) if row.is_calcjob), key=lambda r: (r.ctime, r.uuid))

    def called(self, pk: int) -> list[ProcessRow]:
        """The processes ``pk`` called directly."""
        return [self.rows[child] for child in self.children.get(pk, [])]

    def top_below_root(self, pk: int) -> ProcessRow | None:
        """The ancestor of ``pk`` that the root called directly (the rung of a chain), or None outside the tree."""
        current = self.rows.get(pk)
        while current is not None and current.caller is not None and current.caller != self.root:
            current = self.rows.get(current.caller)
        if current is None or current.caller != self.root:
            return None
        return current


def call_tree(root: orm.ProcessNode | int) -> CallTree:
    """The call tree below ``root`` (CALL_WORK and CALL_CALC links), root included."""
    from aiida.tools.graph.graph_traversers import traverse_graph

    root_pk = root if isinstance(root, int) else root.pk
    result = traverse_graph(
        [root_pk], links_forward=[LinkType.CALL_WORK, LinkType.CALL_CALC], get_links=True, max_iterations=None
    )
    pks = set(result['nodes'])
    rows: dict[int, ProcessRow] = {}
    query = orm.QueryBuilder()
    query.append(orm.ProcessNode, filters={'id': {'in': list(pks)}}, project=list(_PROJECT))
    for values in query.iterall():
        rows[values[0]] = ProcessRow(*values)
    children: dict[int, list[int]] = {}
    for link in result['links'] or ():
        if link.source_id in rows and link.target_id in rows:
            rows[link.target_id].caller = link.source_id
            rows[link.target_id].call_label = link.link_label
            children.setdefault(link.source_id, []).append(link.target_id)
    for values in children.values():
        values.sort(key=lambda pk: (rows[pk].ctime, rows[pk].uuid))
    return CallTree(root=root_pk, rows=rows, children=children)

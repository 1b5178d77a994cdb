"""The call tree of a process in a handful of queries: every process it called, with state, rung and cache source.

A chain calls four rungs, which call restart chains, which call calculations: walking that tree node by node
(``node.called``, ``node.caller``) costs one query per node, which on a chain of a few hundred processes is most of the
time a page or a trace takes.  Here one recursive SQL query follows the CALL links (aiida's ``traverse_graph``, one
query per generation, where the storage is not SQL) and one ``QueryBuilder`` projects what is shown of every process
found.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime

from aiida import orm
from aiida.common.links import LinkType

__all__ = ('CallTree', 'ProcessRow', 'call_tree', 'read_snapshot', 'select', 'sql_session', 'walk_links')


#: The call trees made in the open :func:`read_snapshot`, by root PK: a chain page and the trace it shows both need
#: the chain's tree.  None outside a snapshot, where nothing is kept (the tree may change between two calls).
_TREES: contextvars.ContextVar[dict | None] = contextvars.ContextVar('aiida_multiscale_call_trees', default=None)


@contextlib.contextmanager
def read_snapshot():
    """Run the queries and attribute reads of a trace in one savepoint of the profile's session.

    Outside a transaction aiida re-reads a stored node's row before every read of a mutable field (``node.base.
    attributes``, ``label``...), and every ``QueryBuilder.iterall`` commits, which expires every node loaded before: a
    trace that reads a few hundred attributes of a few dozen nodes then costs hundreds of round trips (366 queries,
    2 s on PostgreSQL, for a fast chain).  Inside a nested transaction (a savepoint) aiida does neither; the savepoint
    is released at the end, and a transaction the snapshot began is committed without expiring the nodes it loaded,
    so that they stay readable without a query each.  Nothing is written, so the snapshot changes nothing in the
    profile.  A no-op inside an open savepoint, or on a storage without an SQLAlchemy session.
    """
    from aiida.manage import get_manager

    storage = get_manager().get_profile_storage()
    session = storage.get_session() if hasattr(storage, 'get_session') else None
    if session is None or session.in_nested_transaction():
        yield
        return
    began = not session.in_transaction()
    savepoint = session.begin_nested()
    trees = _TREES.set({})
    try:
        yield
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    else:
        if savepoint.is_active:
            savepoint.commit()
    finally:
        _TREES.reset(trees)
        if began and session.in_transaction():
            # End the transaction this snapshot began, as aiida's own queries do, without expiring the nodes read.
            expire, session.expire_on_commit = session.expire_on_commit, False
            try:
                session.commit()
            finally:
                session.expire_on_commit = expire


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


#: The CALL links below a process in one recursive query (``core.psql_dos`` and ``core.sqlite_dos``, aiida's own
#: ``db_dblink``): the processes called, then every CALL link leaving one of them.  The root is cast for PostgreSQL,
#: which refuses the ``smallint`` that psycopg sends for a small Python int as the type of the recursive column, and
#: ``(link.type || '')`` keeps the database off the index on the link type (SQLite without statistics picks it, and
#: then scans every CALL link of the profile).
_CALLED_SQL = """
WITH RECURSIVE called(id) AS (
    SELECT CAST(:root AS INTEGER)
    UNION
    SELECT link.output_id FROM db_dblink AS link JOIN called ON link.input_id = called.id
    WHERE (link.type || '') IN ('call_work', 'call_calc')
)
SELECT link.input_id, link.output_id, link.label FROM db_dblink AS link JOIN called ON link.input_id = called.id
WHERE (link.type || '') IN ('call_work', 'call_calc')
"""


def sql_session():
    """The profile's SQLAlchemy session if its database is PostgreSQL or SQLite (aiida's ``db_dblink`` table in both,
    so that one SQL text serves both), else None (then the callers fall back on aiida's generic traversal)."""
    from aiida.manage import get_manager

    storage = get_manager().get_profile_storage()
    if not hasattr(storage, 'get_session'):
        return None
    session = storage.get_session()
    bind = session.get_bind()
    return session if bind.dialect.name in ('postgresql', 'sqlite') else None


def select(session, sql: str, **params) -> list[tuple]:
    """The rows of ``sql`` with ``params``; a list, set or tuple parameter is expanded (``id IN :pks``)."""
    from sqlalchemy import bindparam, text

    statement = text(sql)
    lists = [name for name, value in params.items() if isinstance(value, list | set | tuple)]
    if lists:
        statement = statement.bindparams(*(bindparam(name, expanding=True) for name in lists))
    values = {name: list(value) if name in lists else value for name, value in params.items()}
    return [tuple(row) for row in session.execute(statement, values)]


def walk_links(session, start: int, types: tuple[str, ...], backward: bool) -> list[tuple[int, int, str, str]]:
    """``(input pk, output pk, type, label)`` of every link of ``types`` reached from ``start``, one statement per
    generation: for SQLite, in the process, where a statement costs microseconds.

    SQLite's recursive queries are no good here once the profile has statistics (``ANALYZE``): it then builds a Bloom
    filter of the whole link table for the join, 100 ms on 10^5 nodes, whatever the size of the chain.  Every node is
    expanded once, so that every link is returned once, as by the recursive query.
    """
    near, far = (1, 0) if backward else (0, 1)
    column = 'output_id' if backward else 'input_id'
    sql = f"SELECT input_id, output_id, type, label FROM db_dblink WHERE {column} IN :pks AND (type || '') IN :types"
    seen, frontier, links = {start}, {start}, []
    while frontier:
        rows = select(session, sql, pks=frontier, types=types)
        links.extend(rows)
        frontier = {row[far] for row in rows if row[near] in frontier} - seen
        seen |= frontier
    return links


def _call_links(root_pk: int) -> list[tuple[int, int, str]]:
    """``(caller pk, called pk, link label)`` of every CALL link below ``root_pk``.

    One recursive query where the storage is SQL; otherwise aiida's ``traverse_graph``, one query per generation of
    the call tree (four for a chain, each costing more to build than to run).
    """
    session = sql_session()
    if session is not None and session.get_bind().dialect.name == 'sqlite':
        links = walk_links(session, root_pk, (LinkType.CALL_WORK.value, LinkType.CALL_CALC.value), backward=False)
        return [(source, target, label) for source, target, _, label in links]
    if session is not None:
        from sqlalchemy import text

        return [tuple(row) for row in session.execute(text(_CALLED_SQL), {'root': root_pk})]
    from aiida.tools.graph.graph_traversers import traverse_graph

    result = traverse_graph(
        [root_pk], links_forward=[LinkType.CALL_WORK, LinkType.CALL_CALC], get_links=True, max_iterations=None
    )
    return [(link.source_id, link.target_id, link.link_label) for link in result['links'] or ()]


def call_tree(root: orm.ProcessNode | int) -> CallTree:
    """The call tree below ``root`` (CALL_WORK and CALL_CALC links), root included; made once per
    :func:`read_snapshot`."""
    root_pk = root if isinstance(root, int) else root.pk
    trees = _TREES.get()
    if trees is not None and root_pk in trees:
        return trees[root_pk]
    links = _call_links(root_pk)
    pks = {root_pk} | {target for _, target, _ in links}
    rows: dict[int, ProcessRow] = {}
    query = orm.QueryBuilder()
    query.append(orm.ProcessNode, filters={'id': {'in': list(pks)}}, project=list(_PROJECT))
    for values in query.iterall():
        rows[values[0]] = ProcessRow(*values)
    children: dict[int, list[int]] = {}
    for source, target, label in links:
        if source in rows and target in rows:
            rows[target].caller = source
            rows[target].call_label = label
            children.setdefault(source, []).append(target)
    for values in children.values():
        values.sort(key=lambda pk: (rows[pk].ctime, rows[pk].uuid))
    tree = CallTree(root=root_pk, rows=rows, children=children)
    if trees is not None:
        trees[root_pk] = tree
    return tree

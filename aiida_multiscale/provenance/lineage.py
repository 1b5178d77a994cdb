"""Lineage queries: from a macro HandoffData back through the bridges to every PwCalculation of the DFT rung."""

from __future__ import annotations

import dataclasses

from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.bridges import BRIDGES
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.provenance.caching import called_calculations
from aiida_multiscale.provenance.calls import read_snapshot, select, sql_session, walk_links

__all__ = (
    'Lineage',
    'dft_calculation_summary',
    'dft_result_summary',
    'find_macro',
    'md_calculation_summary',
    'trace',
    'trace_json',
)

BRIDGE_ORDER = {name: index for index, (name, _, _) in enumerate(BRIDGES)}
PW_PROCESS_TYPE = 'aiida.calculations:quantumespresso.pw'
LAMMPS_PROCESS_TYPE = 'aiida.calculations:lammps.raw'
#: The calcfunction that compares an ``eos`` handoff with the all-electron reference (workflows/functions/verification).
VERIFY_PROCESS_LABEL = 'verify_equation_of_state'
#: The ``node_type`` prefixes of calcfunctions and calculation jobs (what ``QueryBuilder`` filters a class on).
_CALCFUNCTION_TYPE = 'process.calculation.calcfunction.'
_CALCJOB_TYPE = 'process.calculation.calcjob.'


@dataclasses.dataclass
class Lineage:
    """What :func:`trace` found: the macro node, the bridge handoffs, the DFT calculations, the chain (if any)."""

    macro: HandoffData
    handoffs: list[HandoffData]
    dft_calculations: list[orm.CalcJobNode]
    chain: orm.WorkflowNode | None = None
    assumptions: list[HandoffData] = dataclasses.field(default_factory=list)
    #: The DFT rung's results that the ``dft_to_md`` bridge took, as ``(input label, node)``: ``eos``, ``elastic``.
    dft_results: list[tuple[str, HandoffData]] = dataclasses.field(default_factory=list)
    #: ``{uuid of an eos result: its verification HandoffData}`` (made by ``verify_equation_of_state``).
    verifications: dict[str, HandoffData] = dataclasses.field(default_factory=dict)
    #: ``{pk of a DFT calculation: {link label: input node}}`` as :func:`trace` found them (None: not fetched), so that
    #: :func:`trace_json` needs no query of its own for the calculations' summaries.
    calculation_inputs: dict[int, dict[str, orm.Data]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )
    #: Every LAMMPS calculation behind the macro result (bulk, grain-boundary energy and mobility runs).
    md_calculations: list[orm.CalcJobNode] = dataclasses.field(default_factory=list)

    def variance_budget(self) -> list[dict]:
        """The macro node's variance budgets (one per macro quantity, terms ranked by share); [] for older chains."""
        return list(self.macro.metadata.get('variance_budget') or [])

    def weakest_handoff(self) -> dict | None:
        """The uncertain input with the largest share of a macro quantity's variance: what the answer depends on most.

        ``{uuid, quantity, macro_quantity, share, basis: 'variance_share'}`` from the macro node's variance budget.  A
        macro node without a budget (made before it existed) falls back to the handoff quantity with the largest
        relative std, ``{uuid, quantity, relative_std, basis: 'relative_std'}``: where the std is largest, whether or
        not the answer depends on it.
        """
        weakest = self.macro.metadata.get('weakest')
        if weakest:
            return {**weakest, 'basis': 'variance_share'}
        best = None
        for node in self.handoffs:
            for name in node.names:
                relative = node[name].relative_std
                if relative is None:
                    continue
                if best is None or relative > best['relative_std']:
                    best = {'uuid': node.uuid, 'quantity': name, 'relative_std': relative, 'basis': 'relative_std'}
        return best


def find_macro(node: orm.Node) -> HandoffData:
    """The macro HandoffData of ``node``: the node itself, or the ``macro`` output of a (chain) process."""
    if isinstance(node, HandoffData) and node.bridge == 'fem_to_macro':
        return node
    if isinstance(node, orm.ProcessNode):
        # The ``macro`` output in one query: ``node.outputs`` would load every output of the chain as a node first.
        link_type = LinkType.RETURN if isinstance(node, orm.WorkflowNode) else LinkType.CREATE
        query = orm.QueryBuilder()
        query.append(orm.ProcessNode, filters={'id': node.pk}, tag='process')
        query.append(
            orm.Node, with_incoming='process', edge_filters={'type': link_type.value, 'label': 'macro'}, project='*'
        )
        macro = query.first(flat=True)
        if macro is not None:
            return macro
        state = node.process_state.value if node.process_state else 'unknown'
        raise ValueError(
            f'{node.process_label}<{node.pk}> has no `macro` output (state {state}, exit status {node.exit_status}); '
            'trace needs a finished MultiscaleWorkChain or its macro HandoffData'
        )
    raise ValueError(f'node<{node.pk}> is a {type(node).__name__}, not a MultiscaleWorkChain or a macro HandoffData')


#: Data provenance backwards in one recursive query: the CREATE and INPUT_CALC links into every ancestor.  ``UNION``
#: (not ``UNION ALL``, which aiida's ``with_descendants`` uses) visits every ancestor once: the paths through a chain's
#: graph number in the tens of thousands (49,036 rows for the 146 ancestors of the fast chain's macro node), the
#: ancestors in the hundreds.  The same SQL for PostgreSQL and SQLite, on aiida's own ``db_dblink`` table.  The start is
#: cast: psycopg sends a small Python int as ``smallint``, which PostgreSQL refuses as the type of a recursive column
#: whose recursive term is ``integer``.  ``(link.type || '')`` keeps the database off the index on the link type, which
#: SQLite (no statistics unless someone runs ``ANALYZE``) and PostgreSQL (before autovacuum analysed a fresh import)
#: otherwise pick, scanning every link of the profile; every statement here reaches the links through their nodes.
_ANCESTORS_SQL = """
WITH RECURSIVE ancestors(id) AS (
    SELECT CAST(:start AS INTEGER)
    UNION
    SELECT link.input_id FROM db_dblink AS link JOIN ancestors ON link.output_id = ancestors.id
    WHERE (link.type || '') IN ('create', 'input_calc')
)
SELECT link.input_id, link.output_id, link.type, link.label FROM db_dblink AS link
JOIN ancestors ON link.output_id = ancestors.id
WHERE (link.type || '') IN ('create', 'input_calc')
"""


def _ancestor_links(start: int) -> list[tuple[int, int, str, str]]:
    """Data provenance backwards: ``(source pk, target pk, link type, label)`` of every CREATE and INPUT_CALC link into
    ``start`` or one of its ancestors, so that the ancestors are ``start`` and the sources.

    The links (not only the ancestors) answer without further queries which process created an ancestor and what
    entered a bridge.  One recursive query where the storage is SQL (``core.psql_dos``, ``core.sqlite_dos``); otherwise
    aiida's ``traverse_graph``, one query per generation (about 17 for a chain).
    """
    session = sql_session()
    if session is not None and session.get_bind().dialect.name == 'sqlite':
        return walk_links(session, start, (LinkType.CREATE.value, LinkType.INPUT_CALC.value), backward=True)
    if session is not None:
        from sqlalchemy import text

        return [tuple(row) for row in session.execute(text(_ANCESTORS_SQL), {'start': start})]
    from aiida.tools.graph.graph_traversers import traverse_graph

    result = traverse_graph([start], links_backward=[LinkType.CREATE, LinkType.INPUT_CALC], get_links=True)
    return [(link.source_id, link.target_id, link.link_type, link.link_label) for link in result['links'] or ()]


def _rung_of(node: orm.ProcessNode) -> orm.WorkflowNode | None:
    """The rung work chain that (indirectly) called ``node``: the ancestor whose caller is the chain, or the top."""
    current = node
    while current.caller is not None:
        if current.caller.process_label == 'MultiscaleWorkChain':
            return current if isinstance(current, orm.WorkflowNode) else None
        current = current.caller
    return current if isinstance(current, orm.WorkflowNode) else None


def _sort_key(node: orm.Node):
    # ctime and uuid survive an archive round trip; pk does not.
    return (node.ctime, node.uuid)


def _dft_rung_calculations(creators: dict[int, set[int]], callers: dict[int, int]) -> dict[int, int]:
    """``{pk: pk}`` of every PwCalculation called by the DFT rung that made the inputs of the ``dft_to_md`` bridges.

    ``creators``: ``{bridge pk: pks of the processes that created its inputs}``; ``callers``: ``{bridge pk: pk of the
    workflow that called it}``.  The rung is found in the call tree of the chain that called the bridge (two queries,
    whatever the size of the chain); a bridge run outside a chain falls back to walking the callers of its inputs'
    creators.
    """
    from aiida_multiscale.provenance.calls import call_tree

    found = {}
    trees = {}
    for bridge, pks in creators.items():
        caller = callers.get(bridge)
        if caller is None:
            for pk in pks:
                rung = _rung_of(orm.load_node(pk))
                if rung is not None:
                    for calc in called_calculations(rung):
                        if calc.process_type == PW_PROCESS_TYPE:
                            found[calc.pk] = calc.pk
            continue
        if caller not in trees:
            trees[caller] = call_tree(caller)
        tree = trees[caller]
        for pk in pks:
            rung = tree.top_below_root(pk)
            if rung is None:
                continue
            for row in tree.calcjobs(rung.pk):
                if row.process_type == PW_PROCESS_TYPE:
                    found[row.pk] = row.pk
    return found


def trace(node: orm.Node) -> Lineage:
    """Walk from the macro prediction of ``node`` back to the handoffs and every PwCalculation of the DFT rung.

    See :func:`_trace`; run in one :func:`read_snapshot`, so that the nodes it returns are read without a query each.
    """
    with read_snapshot():
        session = sql_session()
        if session is not None:
            return _trace_sql(node, session)
        return _trace(node)


def _trace(node: orm.Node) -> Lineage:
    """Walk from the macro prediction of ``node`` back to the handoffs and every PwCalculation of the DFT rung.

    The handoffs are the HandoffData nodes made by a bridge calcfunction; the DFT calculations are found twice, by
    the data provenance (which PwCalculations fed the fits) and as every PwCalculation called by the DFT rung that
    made the ``dft_to_md`` inputs, so that a calculation whose result was discarded (e.g. an EOS re-centring) is still
    listed.  A fixed number of bulk queries (plus one per generation of ancestors), so that it stays fast on a large
    profile.
    """
    macro = find_macro(node)
    links = _ancestor_links(macro.pk)
    pks = sorted({macro.pk} | {source for source, _, _, _ in links})
    creator_of = {target: source for source, target, link_type, _ in links if link_type == LinkType.CREATE.value}
    inputs_of: dict[int, list[tuple[int, str]]] = {}
    for source, target, link_type, label in links:
        if link_type == LinkType.INPUT_CALC.value:
            inputs_of.setdefault(target, []).append((source, label))
    handoffs, assumptions, handoff_data = {}, {}, {}

    # Every HandoffData ancestor with the label of the process that created it, in one query.
    query = orm.QueryBuilder()
    query.append(HandoffData, filters={'id': {'in': pks}}, project='*', tag='data')
    query.append(
        orm.ProcessNode,
        with_outgoing='data',
        edge_filters={'type': LinkType.CREATE.value},
        project=['attributes.process_label'],
        outerjoin=True,
    )
    for ancestor, creator_label in query.iterall():
        handoff_data[ancestor.pk] = ancestor
        if creator_label in BRIDGE_ORDER and ancestor.pk != macro.pk:
            handoffs[ancestor.pk] = (BRIDGE_ORDER[creator_label], ancestor)
        elif ancestor.producer == 'assumption':
            assumptions[ancestor.pk] = ancestor

    # The ``dft_to_md`` bridges and the PwCalculations among the ancestors, in one query of a few columns.
    bridges, calc_pks = [], set()
    query = orm.QueryBuilder()
    query.append(
        orm.ProcessNode,
        filters={'id': {'in': pks}},
        project=['id', 'node_type', 'process_type', 'attributes.process_label'],
    )
    md_pks = set()
    for pk, node_type, process_type, process_label in query.iterall():
        if node_type.startswith(_CALCFUNCTION_TYPE) and process_label == 'dft_to_md':
            bridges.append(pk)
        elif node_type.startswith(_CALCJOB_TYPE) and process_type == PW_PROCESS_TYPE:
            calc_pks.add(pk)
        elif node_type.startswith(_CALCJOB_TYPE) and process_type == LAMMPS_PROCESS_TYPE:
            md_pks.add(pk)

    # The workflows that called the bridges and the macro's creator (the chain), in one query.
    macro_creator = creator_of.get(macro.pk)
    asked = bridges + ([macro_creator] if macro_creator is not None else [])
    callers = {}
    if asked:
        query = orm.QueryBuilder()
        query.append(orm.ProcessNode, filters={'id': {'in': asked}}, tag='called', project='id')
        query.append(
            orm.WorkflowNode, with_outgoing='called', edge_filters={'type': LinkType.CALL_CALC.value}, project='id'
        )
        callers = dict(query.iterall())
    creators = {
        bridge: {creator_of[source] for source, _ in inputs_of.get(bridge, ()) if source in creator_of}
        for bridge in bridges
    }
    bridge_callers = {bridge: callers[bridge] for bridge in bridges if bridge in callers}
    calc_pks.update(_dft_rung_calculations(creators, bridge_callers))

    # The calculations and the chain as nodes, in one query.
    chain_pk = callers.get(macro_creator) if macro_creator is not None else None
    loaded = {}
    wanted = calc_pks | md_pks | ({chain_pk} if chain_pk is not None else set())
    if wanted:
        query = orm.QueryBuilder()
        query.append(orm.Node, filters={'id': {'in': list(wanted)}}, project='*')
        loaded = {found.pk: found for (found,) in query.iterall()}
    calculations = [loaded[pk] for pk in calc_pks if pk in loaded]
    chain = loaded.get(chain_pk) if chain_pk is not None else None

    # The DFT results: the HandoffData inputs of the ``dft_to_md`` bridges (``eos``, ``elastic``), by input label.
    found = {}
    for bridge in bridges:
        for source, label in inputs_of.get(bridge, ()):
            if source in handoff_data:
                found[handoff_data[source].uuid] = (label, handoff_data[source])
    dft_results = sorted(found.values(), key=lambda item: (item[0] != 'eos', item[0], *_sort_key(item[1])))
    ordered = sorted(handoffs.values(), key=lambda item: (item[0], *_sort_key(item[1])))
    return Lineage(
        macro=macro,
        handoffs=[node for _, node in ordered],
        dft_calculations=sorted(calculations, key=_sort_key),
        chain=chain,
        assumptions=sorted(assumptions.values(), key=_sort_key),
        dft_results=dft_results,
        verifications=_verifications([node for _, node in dft_results]),
        md_calculations=sorted((loaded[pk] for pk in md_pks if pk in loaded), key=_sort_key),
    )


def _attribute_sql(session, column: str, key: str) -> str:
    """SQL of the text value of attribute ``key`` of the JSON ``column`` (``key`` is a constant of this module)."""
    if session.get_bind().dialect.name == 'postgresql':
        return f"{column}->>'{key}'"
    return f"json_extract({column}, '$.{key}')"


def _trace_sql(node: orm.Node, session) -> Lineage:
    """:func:`_trace` in plain SQL on aiida's ``db_dbnode`` and ``db_dblink`` tables, the nodes loaded in one query.

    Each ``QueryBuilder`` costs 4 to 8 ms of Python to build (SQLAlchemy adapts every column of every alias anew)
    however little it asks; the eight of :func:`_trace` were most of a trace's 60 ms.  Here the links and a few
    columns come from SQL statements of well under a millisecond each, and one ``QueryBuilder`` loads every node the
    lineage holds, the inputs of the DFT calculations included.  The same result as :func:`_trace` (the ``trace_json``
    of both compared on PostgreSQL and SQLite profiles of copies of a fast chain).
    """
    macro_pk = None
    if isinstance(node, orm.ProcessNode):
        link_type = LinkType.RETURN if isinstance(node, orm.WorkflowNode) else LinkType.CREATE
        sql = "SELECT output_id FROM db_dblink WHERE input_id = :pk AND (type || '') = :type AND label = 'macro'"
        rows = select(session, sql, pk=node.pk, type=link_type.value)
        macro_pk = rows[0][0] if rows else None
    if macro_pk is None:
        macro_pk = find_macro(node).pk  # a macro HandoffData, or the error that says why there is none

    links = _ancestor_links(macro_pk)
    pks = {macro_pk} | {source for source, _, _, _ in links}
    creator_of = {target: source for source, target, link_type, _ in links if link_type == LinkType.CREATE.value}
    inputs_of: dict[int, list[tuple[int, str]]] = {}
    for source, target, link_type, label in links:
        if link_type == LinkType.INPUT_CALC.value:
            inputs_of.setdefault(target, []).append((source, label))

    label_sql = _attribute_sql(session, 'attributes', 'process_label')
    rows = select(session, f'SELECT id, node_type, process_type, {label_sql} FROM db_dbnode WHERE id IN :pks', pks=pks)
    node_types = {pk: node_type for pk, node_type, _, _ in rows}
    labels = {pk: label for pk, _, _, label in rows}
    handoff_type = HandoffData._query_type_string
    handoff_pks = {pk for pk, node_type in node_types.items() if node_type.startswith(handoff_type)}
    bridges, calc_pks, md_pks = [], set(), set()
    for pk, node_type, process_type, label in rows:
        if node_type.startswith(_CALCFUNCTION_TYPE) and label == 'dft_to_md':
            bridges.append(pk)
        elif node_type.startswith(_CALCJOB_TYPE) and process_type == PW_PROCESS_TYPE:
            calc_pks.add(pk)
        elif node_type.startswith(_CALCJOB_TYPE) and process_type == LAMMPS_PROCESS_TYPE:
            md_pks.add(pk)

    # The workflows that called the bridges and the macro's creator (the chain).
    macro_creator = creator_of.get(macro_pk)
    asked = set(bridges) | ({macro_creator} if macro_creator is not None else set())
    callers = {}
    if asked:
        sql = "SELECT output_id, input_id FROM db_dblink WHERE (type || '') = 'call_calc' AND output_id IN :pks"
        callers = dict(select(session, sql, pks=asked))
    creators = {
        bridge: {creator_of[source] for source, _ in inputs_of.get(bridge, ()) if source in creator_of}
        for bridge in bridges
    }
    bridge_callers = {bridge: callers[bridge] for bridge in bridges if bridge in callers}
    calc_pks.update(_dft_rung_calculations(creators, bridge_callers))
    chain_pk = callers.get(macro_creator) if macro_creator is not None else None

    # The DFT results (HandoffData inputs of the ``dft_to_md`` bridges) and their newest verifications.
    result_links = [
        (label, source) for bridge in bridges for source, label in inputs_of.get(bridge, ()) if source in handoff_pks
    ]
    verification_rows = []
    if result_links:
        sql = f"""
            SELECT given.input_id, made.output_id FROM db_dblink AS given
            JOIN db_dblink AS made ON made.input_id = given.output_id
            JOIN db_dbnode AS verify ON verify.id = given.output_id
            JOIN db_dbnode AS result ON result.id = made.output_id
            WHERE (given.type || '') = 'input_calc' AND (made.type || '') = 'create' AND given.input_id IN :pks
            AND verify.node_type LIKE :calcfunction AND {_attribute_sql(session, 'verify.attributes', 'process_label')}
            = :label AND result.node_type LIKE :handoff
        """
        verification_rows = select(
            session,
            sql,
            pks={pk for _, pk in result_links},
            calcfunction=f'{_CALCFUNCTION_TYPE}%',
            label=VERIFY_PROCESS_LABEL,
            handoff=f'{handoff_type}%',
        )

    # The inputs of the DFT calculations that their summaries show.
    input_rows = []
    if calc_pks:
        sql = "SELECT output_id, label, input_id FROM db_dblink WHERE (type || '') = 'input_calc' AND output_id IN :pks"
        input_rows = [row for row in select(session, sql, pks=calc_pks) if _summary_input(row[1])]

    # Every node the lineage holds, in one query.
    wanted = {macro_pk} | handoff_pks | calc_pks | md_pks | {made for _, made in verification_rows}
    wanted |= {pk for _, _, pk in input_rows} | ({chain_pk} if chain_pk is not None else set())
    query = orm.QueryBuilder()
    query.append(orm.Node, filters={'id': {'in': list(wanted)}}, project='*')
    loaded = {found.pk: found for (found,) in query.iterall()}

    macro = loaded[macro_pk]
    handoffs, assumptions = {}, {}
    for pk in handoff_pks:
        ancestor = loaded[pk]
        creator_label = labels.get(creator_of.get(pk))
        if creator_label in BRIDGE_ORDER and pk != macro_pk:
            handoffs[pk] = (BRIDGE_ORDER[creator_label], ancestor)
        elif ancestor.producer == 'assumption':
            assumptions[pk] = ancestor
    found = {}
    for label, pk in result_links:
        found[loaded[pk].uuid] = (label, loaded[pk])
    dft_results = sorted(found.values(), key=lambda item: (item[0] != 'eos', item[0], *_sort_key(item[1])))
    verifications = {}
    for given, made in verification_rows:
        uuid, node = loaded[given].uuid, loaded[made]
        if uuid not in verifications or _sort_key(node) > _sort_key(verifications[uuid]):
            verifications[uuid] = node
    calculation_inputs = {pk: {} for pk in calc_pks}
    for calc, label, pk in input_rows:
        calculation_inputs[calc][label] = loaded[pk]
    ordered = sorted(handoffs.values(), key=lambda item: (item[0], *_sort_key(item[1])))
    return Lineage(
        macro=macro,
        handoffs=[node for _, node in ordered],
        dft_calculations=sorted((loaded[pk] for pk in calc_pks), key=_sort_key),
        chain=loaded.get(chain_pk) if chain_pk is not None else None,
        assumptions=sorted(assumptions.values(), key=_sort_key),
        dft_results=dft_results,
        verifications=verifications,
        calculation_inputs=calculation_inputs,
        md_calculations=sorted((loaded[pk] for pk in md_pks), key=_sort_key),
    )


def _verifications(results: list[HandoffData]) -> dict[str, HandoffData]:
    """``{uuid of a result: the newest HandoffData that verify_equation_of_state made from it}``, in one query."""
    if not results:
        return {}
    query = orm.QueryBuilder()
    query.append(HandoffData, filters={'id': {'in': [node.pk for node in results]}}, tag='eos', project='uuid')
    query.append(
        orm.CalcFunctionNode,
        with_incoming='eos',
        edge_filters={'type': LinkType.INPUT_CALC.value},
        filters={'attributes.process_label': VERIFY_PROCESS_LABEL},
        tag='verify',
    )
    query.append(HandoffData, with_incoming='verify', edge_filters={'type': LinkType.CREATE.value}, project='*')
    found = {}
    for uuid, node in query.iterall():
        if uuid not in found or _sort_key(node) > _sort_key(found[uuid]):
            found[uuid] = node
    return found


def _quantities(node: HandoffData) -> dict:
    return node.quantities


def dft_calculation_summary(calc: orm.CalcJobNode) -> dict:
    """uuid, formula, pseudos {element: md5}, cutoffs [Ry], k-mesh, smearing and structure uuid of a pw.x run.

    ``cached_from`` is the UUID of the calculation AiiDA's cache reused instead of running pw.x again (None: it ran).
    """
    inputs = {link.link_label: link.node for link in calc.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all()}
    return _summary(calc, inputs)


def _summary_input(label: str) -> bool:
    """Whether :func:`_summary` reads the input of link ``label`` (the others, e.g. ``code``, are not loaded)."""
    return label in _SUMMARY_INPUTS or label.startswith('pseudos__')


def _dft_summaries(calcs: list[orm.CalcJobNode], known: dict[int, dict] | None = None) -> list[dict]:
    """:func:`dft_calculation_summary` of every calculation, with the inputs of all of them fetched in two queries.

    The calculations of a rung share most inputs (pseudopotentials, parameters, k-points): the links are read first,
    then every input that :func:`_summary` reads is loaded once (not once per link: 13 pw.x runs have about 90 input
    links, 20 distinct nodes), and the ``code`` and other inputs that the summary does not show are not loaded at all.
    """
    if not calcs:
        return []
    if known is not None and all(calc.pk in known for calc in calcs):
        return [_summary(calc, known[calc.pk]) for calc in calcs]
    inputs = {calc.pk: {} for calc in calcs}
    query = orm.QueryBuilder()
    query.append(orm.CalcJobNode, filters={'id': {'in': list(inputs)}}, tag='calc', project='id')
    query.append(
        orm.Data,
        with_outgoing='calc',
        tag='input',
        edge_filters={
            'type': LinkType.INPUT_CALC.value,
            'or': [{'label': {'in': list(_SUMMARY_INPUTS)}}, {'label': {'like': 'pseudos%'}}],
        },
        edge_tag='link',
        edge_project='label',
        project='id',
    )
    links = [(row['calc']['id'], row['link']['label'], row['input']['id']) for row in query.iterdict()]
    nodes = {}
    if links:
        query = orm.QueryBuilder()
        query.append(orm.Data, filters={'id': {'in': list({pk for _, _, pk in links})}}, project='*')
        nodes = {node.pk: node for (node,) in query.iterall()}
    for calc, label, pk in links:
        inputs[calc][label] = nodes[pk]
    return [_summary(calc, inputs[calc.pk]) for calc in calcs]


#: The inputs of a pw.x run that :func:`_summary` reads, besides the ``pseudos__<element>`` ones.
_SUMMARY_INPUTS = ('structure', 'parameters', 'kpoints')


def _summary(calc: orm.CalcJobNode, inputs: dict) -> dict:
    structure = inputs.get('structure')
    parameters = inputs['parameters'].get_dict() if 'parameters' in inputs else {}
    system = {key.lower(): value for key, value in parameters.get('SYSTEM', {}).items()}
    pseudos = {}
    for label, pseudo in inputs.items():
        if label.startswith('pseudos__'):
            element = getattr(pseudo, 'element', None) or label.split('__', 1)[1]
            pseudos[element] = pseudo.md5
    kpoints = inputs.get('kpoints')
    mesh = None
    if kpoints is not None:
        try:
            mesh = list(kpoints.get_kpoints_mesh()[0])
        except AttributeError:
            mesh = None
    return {
        'uuid': calc.uuid,
        'formula': structure.get_formula() if structure is not None else None,
        'pseudos': dict(sorted(pseudos.items())),
        'ecutwfc': system.get('ecutwfc'),
        'ecutrho': system.get('ecutrho'),
        'kpoints_mesh': mesh,
        'smearing': {
            'occupations': system.get('occupations'),
            'type': system.get('smearing'),
            'degauss': system.get('degauss'),
        },
        'structure_uuid': structure.uuid if structure is not None else None,
        'cached_from': calc.base.caching.get_cache_source(),
    }


def _verification_summary(label: str, node: HandoffData, verification: HandoffData | None) -> dict:
    """The verification entry of a DFT result: the comparison, the reason there is none, or that none was recorded."""
    if verification is not None:
        metadata = verification.metadata
        return {
            'uuid': verification.uuid,
            'status': metadata.get('status'),
            'reason': metadata.get('reason'),
            'quantities': verification.quantities,
            'agreement': metadata.get('agreement'),
            'reference': metadata.get('reference'),
            'reference_citation': metadata.get('reference_citation'),
            'reference_source': metadata.get('reference_source'),
        }
    if node.producer != 'fit_equation_of_state' and label != 'eos':
        return {'uuid': None, 'status': 'not_applicable', 'reason': 'the all-electron reference is an E(V) curve'}
    return {
        'uuid': None,
        'status': 'not_recorded',
        'reason': 'no verify_equation_of_state node: the rung ran on a `structure`, or before the verification existed',
    }


def dft_result_summary(label: str, node: HandoffData, verification: HandoffData | None = None) -> dict:
    """What a DFT result rests on: functional, family, cutoffs and their source, k-mesh and its convergence, and the
    verification against the all-electron reference.

    The settings are the result's ``metadata`` (written by the rung's fits); a key that an older node lacks is None
    (the text trace prints "not recorded").
    """
    metadata = node.metadata
    return {
        'uuid': node.uuid,
        'label': label,
        'producer': node.producer,
        'quantities': node.quantities,
        'functional': metadata.get('functional'),
        'functional_bias': metadata.get('functional_bias'),
        'pseudo_family': metadata.get('pseudo_family'),
        'pseudos': metadata.get('pseudos'),
        'ecutwfc': metadata.get('ecutwfc'),
        'ecutrho': metadata.get('ecutrho'),
        'cutoffs_source': metadata.get('cutoffs_source'),
        'kpoints_mesh': metadata.get('kpoints_mesh'),
        'smearing': {'type': metadata.get('smearing'), 'degauss': metadata.get('degauss')},
        'nspin': metadata.get('nspin'),
        'kpoints_converged': metadata.get('kpoints_converged'),
        'kpoints_tolerance': metadata.get('kpoints_tolerance'),
        'kpoints_convergence': metadata.get('kpoints_convergence'),
        'verification': _verification_summary(label, node, verification),
    }


#: The purpose of a LAMMPS run of the MD rung, from its label (``MdWorkChain`` labels every run by its stage).
_MD_PURPOSES = (('bulk', 'bulk'), ('gb_', 'gb_energy'), ('lattice_', 'gb_mobility'), ('mobility_', 'gb_mobility'))


def md_calculation_summary(calc: orm.CalcJobNode) -> dict:
    """``{uuid, label, purpose, temperature, potential_md5, natoms, steps}`` of one LAMMPS run of the MD rung.

    Read from the run's own inputs, the script the rung wrote and the potential node: ``purpose`` is ``bulk``,
    ``gb_energy`` or ``gb_mobility`` (the a(T) and driven runs); ``temperature`` is that of the thermostat (None for
    the 0 K minimisations); ``steps`` the MD steps of every ``run`` command (0 for minimisations only); ``natoms`` from
    the bicrystal data file's node, or 4 n^3 for the fcc cube a script creates.
    """
    import re

    label = calc.label or ''
    purpose = next((name for prefix, name in _MD_PURPOSES if label.startswith(prefix)), 'other')
    script = calc.inputs.script.get_content() if 'script' in calc.inputs else ''
    steps = sum(int(n) for n in re.findall(r'^run (\d+)', script, flags=re.MULTILINE))
    thermostat = re.search(r'^fix \S+ all n[pv]t temp (\S+)', script, flags=re.MULTILINE)
    natoms = None
    files = calc.inputs.files if 'files' in calc.inputs else {}
    if 'structure' in files:
        natoms = files['structure'].base.attributes.get('natoms', None)
    elif cube := re.search(r'^region box (?:block|prism) 0 (\d+) 0 \1 0 \1', script, flags=re.MULTILINE):
        natoms = 4 * int(cube.group(1)) ** 3
    potential = files.get('potential') if 'potential' in files else None
    return {
        'uuid': calc.uuid,
        'label': label,
        'purpose': purpose,
        'temperature': float(thermostat.group(1)) if thermostat else None,
        'potential_md5': potential.base.attributes.get('md5', None) if potential is not None else None,
        'natoms': natoms,
        'steps': steps,
    }


def trace_json(lineage: Lineage) -> dict:
    """The ``trace --format json`` object (keys in docs/howto_trace.md).

    UUIDs only (no PKs), so that it survives an archive round trip.  In one :func:`read_snapshot`: the object reads a
    few hundred attributes, which outside a transaction aiida would each re-read from the database.
    """
    with read_snapshot():
        return _trace_json(lineage)


def _trace_json(lineage: Lineage) -> dict:
    return {
        'macro': {'uuid': lineage.macro.uuid, 'quantities': _quantities(lineage.macro)},
        'handoffs': [
            {
                'uuid': node.uuid,
                'bridge': node.bridge,
                'from_scale': node.from_scale,
                'to_scale': node.to_scale,
                'quantities': _quantities(node),
            }
            for node in lineage.handoffs
        ],
        'dft_results': [
            dft_result_summary(label, node, lineage.verifications.get(node.uuid)) for label, node in lineage.dft_results
        ],
        'dft_calculations': _dft_summaries(lineage.dft_calculations, lineage.calculation_inputs),
        'md_calculations': [md_calculation_summary(calc) for calc in lineage.md_calculations],
        'weakest_handoff': lineage.weakest_handoff(),
        'variance_budget': lineage.variance_budget(),
    }

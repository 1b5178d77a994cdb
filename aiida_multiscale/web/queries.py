"""What the pages show, read from the profile with aiida's ``QueryBuilder`` in a few bulk queries per page.

No function here loads more ORM nodes than it shows, and none writes: the pages must answer within about 200 ms on a
profile of 10^5 nodes (``benchmarks/trace.py`` measures it).
"""

from __future__ import annotations

import json
import re

from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.bridges import BRIDGES
from aiida_multiscale.provenance.calls import call_tree, read_snapshot

__all__ = ('CHAIN_PROCESS_TYPE', 'chain_detail', 'chain_graph_elements', 'list_chains', 'node_detail')

CHAIN_PROCESS_TYPE = 'aiida.workflows:multiscale.chain'
BRIDGE_ORDER = {name: index for index, (name, _, _) in enumerate(BRIDGES)}
#: The rungs as the chain calls them (CALL_WORK link labels), in the order of the chain.
RUNG_LABELS = ('dft', 'md', 'phase_field', 'fem')
STATES = ('finished', 'failed', 'running', 'waiting', 'created', 'excepted', 'killed')
_PROTOCOL = re.compile(r'\((?P<protocol>[a-z_]+)\)\s*$')

#: Projected for every node drawn or listed: enough for a label and a style without loading the node.
_NODE_PROJECT = (
    'id',
    'uuid',
    'node_type',
    'label',
    'attributes.process_label',
    'attributes.process_state',
    'attributes.exit_status',
    'attributes.bridge',
    'attributes.producer',
    'attributes.from_scale',
    'attributes.to_scale',
    'attributes.quantities',
)


def state_text(process_state: str | None, exit_status: int | None) -> str:
    """``finished``, ``failed`` (finished with a non-zero exit status), or the process state."""
    if process_state == 'finished':
        return 'finished' if not exit_status else 'failed'
    return process_state or 'created'


def _node_row(values) -> dict:
    row = dict(zip((key.replace('attributes.', '') for key in _NODE_PROJECT), values, strict=True))
    row['kind'] = _kind(row)
    row['type'] = row['node_type'].rstrip('.').rsplit('.', 1)[-1]
    row['state'] = state_text(row['process_state'], row['exit_status']) if row['process_state'] else None
    return row


def _kind(row: dict) -> str:
    node_type = row['node_type']
    if node_type.startswith('process.workflow.'):
        return 'workflow'
    if node_type.startswith('process.calculation.calcfunction.'):
        return 'bridge' if row['process_label'] in BRIDGE_ORDER else 'calcfunction'
    if node_type.startswith('process.'):
        return 'calcjob'
    if row['bridge']:
        return 'handoff'
    if row['producer'] == 'assumption':
        return 'assumption'
    if row['quantities'] is not None or 'microstructure' in node_type:
        return 'result'
    return 'data'


def _macro_summary(quantities: dict | None) -> dict:
    return {name: {key: spec.get(key) for key in ('value', 'unit', 'std')} for name, spec in (quantities or {}).items()}


@read_snapshot()
def list_chains(element: str | None = None, state: str | None = None, limit: int = 500) -> list[dict]:
    """The chains of the profile, newest first: element, protocol, state, the macro values with stds, date.

    Two queries whatever the number of chains: the chains with their ``element`` input, then their ``macro`` outputs.
    """
    filters = {'process_type': CHAIN_PROCESS_TYPE}
    if state in ('finished', 'failed'):
        filters['attributes.process_state'] = 'finished'
        filters['attributes.exit_status'] = 0 if state == 'finished' else {'!==': 0}
    elif state:
        filters['attributes.process_state'] = state
    query = orm.QueryBuilder()
    query.append(
        orm.WorkflowNode,
        filters=filters,
        tag='chain',
        project=['id', 'uuid', 'label', 'ctime', 'attributes.process_state', 'attributes.exit_status'],
    )
    query.append(
        orm.Str,
        with_outgoing='chain',
        edge_filters={'label': 'element', 'type': LinkType.INPUT_WORK.value},
        filters={'attributes.value': element} if element else {},
        project=['attributes.value'],
        outerjoin=not element,
    )
    query.order_by({'chain': {'ctime': 'desc'}})
    query.limit(limit)
    rows = []
    for pk, uuid, label, ctime, process_state, exit_status, symbol in query.iterall():
        match = _PROTOCOL.search(label or '')
        rows.append({
            'pk': pk, 'uuid': uuid, 'label': label, 'ctime': ctime, 'element': symbol,
            'protocol': match['protocol'] if match else None,
            'state': state_text(process_state, exit_status), 'exit_status': exit_status, 'macro': {},
        })  # fmt: skip
    if not rows:
        return rows
    by_pk = {row['pk']: row for row in rows}
    query = orm.QueryBuilder()
    query.append(orm.WorkflowNode, filters={'id': {'in': list(by_pk)}}, tag='chain', project=['id'])
    query.append(
        orm.Data,
        with_incoming='chain',
        edge_filters={'label': 'macro', 'type': LinkType.RETURN.value},
        project=['uuid', 'attributes.quantities'],
    )
    for pk, uuid, quantities in query.iterall():
        by_pk[pk]['macro'] = _macro_summary(quantities)
        by_pk[pk]['macro_uuid'] = uuid
    return rows


@read_snapshot()
def element_choices() -> list[str]:
    """The elements of the chains in the profile (for the filter of the list)."""
    query = orm.QueryBuilder()
    query.append(orm.WorkflowNode, filters={'process_type': CHAIN_PROCESS_TYPE}, tag='chain')
    query.append(orm.Str, with_outgoing='chain', edge_filters={'label': 'element'}, project=['attributes.value'])
    query.distinct()
    return sorted({value for (value,) in query.iterall()})


def _links(sources: list[int], link_types: tuple[LinkType, ...], direction: str) -> list[tuple[int, str, str, dict]]:
    """``(pk of the given node, link type, link label, other node row)`` over the links of ``sources``."""
    if not sources:
        return []
    query = orm.QueryBuilder()
    query.append(orm.Node, filters={'id': {'in': sources}}, tag='given', project=['id'])
    relation = 'with_incoming' if direction == 'outgoing' else 'with_outgoing'
    query.append(
        orm.Node,
        **{relation: 'given'},
        tag='other',
        edge_tag='link',
        edge_filters={'type': {'in': [link.value for link in link_types]}},
        edge_project=['type', 'label'],
        project=list(_NODE_PROJECT),
    )
    result = []
    for values in query.iterdict():
        other = values['other']
        row = _node_row([other[key] for key in _NODE_PROJECT])
        result.append((values['given']['id'], values['link']['type'], values['link']['label'], row))
    return result


def _element(row: dict) -> dict:
    label = row['process_label'] or row['type']
    sub = ''
    if row['kind'] in ('handoff', 'result', 'assumption') and row['quantities'] is not None:
        names = list(row['quantities'])
        sub = ', '.join(names[:3]) + (' ...' if len(names) > 3 else '')
    elif row['state']:
        sub = row['state'] + ('' if row['exit_status'] in (None, 0) else f' [{row["exit_status"]}]')
    if row['kind'] == 'handoff':
        label = f'{row["bridge"]}'
    elif row['kind'] == 'data' and row['label']:
        label = f'{label} {row["label"]}'
    return {
        'data': {
            'id': row['uuid'],
            'label': f'{label}\n{sub}' if sub else label,
            'kind': row['kind'],
            'url': f'/node/{row["uuid"]}',
            'pk': row['id'],
        }
    }


@read_snapshot()
def chain_graph_elements(chain: orm.WorkflowNode) -> list[dict]:
    """The summary graph of ``chain`` as cytoscape elements: rungs, bridges, handoffs and assumptions.

    The same graph as ``aiida-multiscale graph`` (:func:`aiida_multiscale.provenance.graph.chain_graph`): each rung's
    outputs enter a bridge calcfunction, which creates the handoff the next rung receives; five queries in all.
    """
    nodes: dict[int, dict] = {}
    edges: dict[tuple, dict] = {}

    def edge(source: dict, target: dict, link_type: str, label: str) -> None:
        nodes.setdefault(source['id'], source)
        nodes.setdefault(target['id'], target)
        key = (source['uuid'], target['uuid'], label)
        edges[key] = {
            'data': {
                'id': f'{source["uuid"]}-{target["uuid"]}-{label}',
                'source': source['uuid'],
                'target': target['uuid'],
                'label': label,
                'type': link_type,
            }
        }

    query = orm.QueryBuilder()
    query.append(orm.Node, filters={'id': chain.pk}, project=list(_NODE_PROJECT))
    chain_row = _node_row(query.one())
    nodes[chain.pk] = chain_row
    called = _links([chain.pk], (LinkType.CALL_WORK, LinkType.CALL_CALC), 'outgoing')
    rungs = {row['id']: row for _, link_type, _, row in called if link_type == LinkType.CALL_WORK.value}
    bridges = {row['id']: row for _, link_type, _, row in called if row['kind'] == 'bridge'}
    for _, link_type, label, row in called:
        if link_type == LinkType.CALL_WORK.value:
            edge(chain_row, row, link_type, label)
    for _, link_type, label, row in _links([chain.pk], (LinkType.INPUT_WORK,), 'incoming'):
        if row['quantities'] is not None or label == 'element':
            edge(row, chain_row, link_type, label)
    bridge_inputs = _links(list(bridges), (LinkType.INPUT_CALC,), 'incoming')
    bridge_outputs = _links(list(bridges), (LinkType.CREATE,), 'outgoing')
    for bridge, link_type, label, row in bridge_inputs:
        edge(row, bridges[bridge], link_type, label)
    for bridge, link_type, label, row in bridge_outputs:
        edge(bridges[bridge], row, link_type, label)
    # Which rung returned a bridge's input, and which rung received a bridge's output: rung -> data -> rung.
    for data, link_type, label, row in _links(
        [row['id'] for _, _, _, row in bridge_inputs], (LinkType.RETURN,), 'incoming'
    ):
        if row['id'] in rungs:
            edge(rungs[row['id']], nodes[data], link_type, label)
    for data, link_type, label, row in _links(
        [row['id'] for _, _, _, row in bridge_outputs], (LinkType.INPUT_WORK,), 'outgoing'
    ):
        if row['id'] in rungs:
            edge(nodes[data], rungs[row['id']], link_type, label)
    return [_element(row) for row in nodes.values()] + list(edges.values())


def _picture_urls(chain: orm.WorkflowNode, outputs: dict[str, dict], rungs: dict[str, dict]) -> list[dict]:
    pictures = []
    for label, title in (
        ('initial_microstructure', 'Grains before the anneal (phase-field start)'),
        ('microstructure', 'Grains after the anneal (the FEM input)'),
        ('stress_map', 'Von Mises stress of the FEM rung'),
    ):
        if label in outputs:
            pictures.append({'title': title, 'url': f'/picture/{outputs[label]["uuid"]}.png'})
    dft = rungs.get('dft')
    if dft is not None and dft['state'] == 'finished':
        pictures.append({'title': 'DFT equation of state and its fit', 'url': f'/chain/{chain.uuid}/eos.png'})
    return pictures


@read_snapshot()
def chain_detail(chain: orm.WorkflowNode) -> dict:
    """Everything the chain page shows: the macro prediction, the handoffs, the weakest one, the rungs and their engine
    runs, the pictures and the summary graph."""
    from aiida_multiscale.provenance.lineage import trace, trace_json

    outputs = {label: row for _, _, label, row in _links([chain.pk], (LinkType.RETURN,), 'outgoing')}
    tree = call_tree(chain)
    rungs = {}
    for row in tree.called(chain.pk):
        if row.is_workflow:
            runs = tree.calcjobs(row.pk)
            rungs[row.call_label] = {
                'label': row.call_label, 'process_label': row.process_label, 'pk': row.pk, 'uuid': row.uuid,
                'state': state_text(row.process_state, row.exit_status), 'exit_status': row.exit_status,
                'exit_message': row.exit_message, 'wall_time': row.wall_time,
                'runs': [
                    {'process_label': run.process_label, 'label': run.label, 'pk': run.pk, 'uuid': run.uuid,
                     'state': state_text(run.process_state, run.exit_status), 'exit_status': run.exit_status,
                     'wall_time': run.wall_time, 'cached_from': run.cached_from}
                    for run in runs
                ],
            }  # fmt: skip
    lineage = None
    if 'macro' in outputs:
        lineage = trace_json(trace(chain))
    query = orm.QueryBuilder()
    query.append(orm.WorkflowNode, filters={'id': chain.pk}, tag='chain')
    query.append(
        orm.Data,
        with_outgoing='chain',
        edge_filters={'label': 'element', 'type': LinkType.INPUT_WORK.value},
        project=['attributes.value'],
    )
    values = [value for (value,) in query.iterall()]
    element = values[-1] if values else None
    match = _PROTOCOL.search(chain.label or '')
    ordered = [rungs[label] for label in RUNG_LABELS if label in rungs]
    ordered += [rung for label, rung in rungs.items() if label not in RUNG_LABELS]
    return {
        'pk': chain.pk,
        'uuid': chain.uuid,
        'label': chain.label,
        'element': element,
        'protocol': match['protocol'] if match else None,
        'ctime': chain.ctime,
        'state': state_text(chain.process_state.value if chain.process_state else None, chain.exit_status),
        'exit_status': chain.exit_status,
        'exit_message': chain.exit_message,
        'trace': lineage,
        'rungs': ordered,
        'pictures': _picture_urls(chain, outputs, rungs),
    }


def _json_text(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@read_snapshot()
def node_detail(node: orm.Node) -> dict:
    """The node page: type, attributes, inputs and outputs (each a link to its own page), and what the type adds."""
    incoming = _links([node.pk], tuple(LinkType), 'incoming')
    outgoing = _links([node.pk], tuple(LinkType), 'outgoing')
    detail = {
        'pk': node.pk,
        'uuid': node.uuid,
        'type': type(node).__name__,
        'node_type': node.node_type,
        'label': node.label,
        'description': node.description,
        'ctime': node.ctime,
        'mtime': node.mtime,
        'attributes': _json_text(node.base.attributes.all),
        'extras': _json_text(node.base.extras.all) if node.base.extras.all else None,
        'inputs': sorted(
            ({'link_type': t, 'label': label, 'node': row} for _, t, label, row in incoming),
            key=lambda item: (item['link_type'], item['label']),
        ),
        'outputs': sorted(
            ({'link_type': t, 'label': label, 'node': row} for _, t, label, row in outgoing),
            key=lambda item: (item['link_type'], item['label']),
        ),
        'quantities': None,
        'picture': None,
        'state': None,
    }
    quantities = node.base.attributes.get('quantities', None)
    if isinstance(quantities, dict):
        detail['quantities'] = quantities
    if 'microstructure' in node.node_type or (
        isinstance(node, orm.SinglefileData) and node.filename.lower().endswith('.png')
    ):
        detail['picture'] = f'/picture/{node.uuid}.png'
    if isinstance(node, orm.ProcessNode):
        detail['state'] = state_text(node.process_state.value if node.process_state else None, node.exit_status)
        detail['process_label'] = node.process_label
        detail['exit_status'] = node.exit_status
        detail['exit_message'] = node.exit_message
        detail['is_chain'] = node.process_type == CHAIN_PROCESS_TYPE
    return detail

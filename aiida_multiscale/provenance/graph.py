"""Provenance graph of a chain with aiida's ``Graph`` (graphviz), handoffs highlighted."""

from __future__ import annotations

import pathlib

from aiida import orm
from aiida.common.links import LinkType
from aiida.tools.visualization import Graph
from aiida.tools.visualization.graph import LinkPair, default_node_styles

from aiida_multiscale.bridges import BRIDGES
from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.data.microstructure import MicrostructureData

__all__ = ('chain_graph', 'write_graph')

BRIDGE_NAMES = {name for name, _, _ in BRIDGES}
HANDOFF_STYLE = {'shape': 'note', 'style': 'filled', 'fillcolor': '#ffd23fff', 'penwidth': 2, 'color': '#b8860b'}
RUNG_RESULT_STYLE = {'shape': 'note', 'style': 'filled', 'fillcolor': '#fff3c4ff', 'penwidth': 1, 'color': '#999999'}
ASSUMPTION_STYLE = {'shape': 'note', 'style': 'filled,dashed', 'fillcolor': '#ffe9a8ff', 'penwidth': 2}


def _node_style(node: orm.Node) -> dict:
    # Handoffs made by a bridge are the highlighted ones; a rung's own results (also HandoffData) are pale.
    creator = getattr(node, 'creator', None)  # only data nodes have a creator
    by_bridge = creator is not None and creator.process_label in BRIDGE_NAMES
    if isinstance(node, HandoffData):
        if node.producer == 'assumption':
            return dict(ASSUMPTION_STYLE)
        return dict(HANDOFF_STYLE if by_bridge else RUNG_RESULT_STYLE)
    if isinstance(node, MicrostructureData):
        return dict(HANDOFF_STYLE if by_bridge else RUNG_RESULT_STYLE)
    return default_node_styles(node)


def _sublabel(node: orm.Node) -> str:
    if isinstance(node, HandoffData):
        scales = f'{node.from_scale} -> {node.to_scale}' if node.from_scale else ''
        names = ', '.join(node.names[:4]) + (' ...' if len(node.names) > 4 else '')
        return f'{node.producer or ""} {scales}\n{names}'.strip()
    if isinstance(node, orm.ProcessNode):
        state = node.process_state.value if node.process_state else ''
        return f'{state} [{node.exit_status}]' if node.exit_status is not None else state
    if isinstance(node, MicrostructureData):
        return f'{node.grain_count} grains'
    return ''


def _edge(graph: Graph, source: orm.Node, target: orm.Node, link_type: LinkType, label: str) -> None:
    graph.add_node(source)
    graph.add_node(target)
    graph.add_edge(source, target, LinkPair(link_type, label))


def chain_graph(chain: orm.WorkflowNode, full: bool = False) -> Graph:
    """The graph of ``chain``: by default rungs, bridges and handoffs only; ``full`` adds every descendant.

    The summary shows exactly what the handoff contract is about: each rung's outputs enter a bridge calcfunction,
    which creates the (highlighted) HandoffData that the next rung receives.
    """
    graph = Graph(
        graph_attr={'rankdir': 'TB', 'label': f'{chain.label or chain.process_label} ({chain.uuid})'},
        node_style_fn=_node_style,
        node_sublabel_fn=_sublabel,
        node_id_type='uuid',
    )
    if full:
        graph.recurse_descendants(chain, annotate_links='both', include_process_inputs=True)
        return graph
    graph.add_node(chain)
    calls = chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all()
    rungs = {link.node.pk for link in calls}
    bridges = [link.node for link in chain.base.links.get_outgoing(link_type=LinkType.CALL_CALC).all()]
    for link in calls:
        _edge(graph, chain, link.node, LinkType.CALL_WORK, link.link_label)
    for link in chain.base.links.get_incoming(link_type=LinkType.INPUT_WORK).all():
        if isinstance(link.node, HandoffData) or link.link_label == 'element':
            _edge(graph, link.node, chain, LinkType.INPUT_WORK, link.link_label)
    for bridge in bridges:
        for link in bridge.base.links.get_incoming(link_type=LinkType.INPUT_CALC).all():
            _edge(graph, link.node, bridge, LinkType.INPUT_CALC, link.link_label)
            # Which rung returned this input: draw rung -> data so the chain reads top-down.
            for returned in link.node.base.links.get_incoming(link_type=LinkType.RETURN).all():
                if returned.node.pk in rungs:
                    _edge(graph, returned.node, link.node, LinkType.RETURN, returned.link_label)
        for link in bridge.base.links.get_outgoing(link_type=LinkType.CREATE).all():
            _edge(graph, bridge, link.node, LinkType.CREATE, link.link_label)
            for consumer in link.node.base.links.get_outgoing(link_type=LinkType.INPUT_WORK).all():
                if consumer.node.pk in rungs:
                    _edge(graph, link.node, consumer.node, LinkType.INPUT_WORK, consumer.link_label)
    return graph


def write_graph(chain: orm.WorkflowNode, path, full: bool = False) -> pathlib.Path:
    """Render :func:`chain_graph` to ``path``; the format follows the suffix (svg, png, pdf)."""
    path = pathlib.Path(path)
    fmt = path.suffix.lstrip('.') or 'svg'
    graph = chain_graph(chain, full=full)
    rendered = graph.graphviz.render(
        filename=f'{path.stem}.gv', directory=str(path.parent or '.'), format=fmt, cleanup=True
    )
    rendered = pathlib.Path(rendered)
    if rendered != path:
        rendered.replace(path)
    return path

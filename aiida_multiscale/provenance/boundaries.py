"""The handoff contract as a query: no value may enter a rung of a chain unless a bridge calcfunction made it."""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType

from aiida_multiscale.bridges import BRIDGES

__all__ = ('boundary_violations',)

BRIDGE_NAMES = {name for name, _, _ in BRIDGES}


def boundary_violations(chain: orm.WorkflowNode) -> list[str]:
    """Every input of a rung of ``chain`` that some process computed but no bridge made; empty list: contract kept.

    An input with no creator is a user input (a protocol Dict, a code, a potential file): it did not cross a rung
    boundary.  An input created by a process must have been created by a bridge calcfunction (``bridges/``) called by
    this chain, so that a value computed by one rung can only reach another through a stored, checked handoff.
    """
    violations = []
    for call in chain.base.links.get_outgoing(link_type=LinkType.CALL_WORK).all():
        rung = call.node
        for link in rung.base.links.get_incoming(link_type=LinkType.INPUT_WORK).all():
            creator = link.node.creator
            if creator is None:
                continue
            if creator.process_label not in BRIDGE_NAMES:
                violations.append(
                    f'{rung.process_label} input {link.link_label!r} ({type(link.node).__name__} {link.node.uuid}) '
                    f'was created by {creator.process_label}, not by a bridge'
                )
            elif creator.caller is None or creator.caller.uuid != chain.uuid:
                violations.append(
                    f'{rung.process_label} input {link.link_label!r} was made by bridge {creator.process_label} '
                    'outside this chain'
                )
    return violations

"""Protocols (fast / moderate / precise) as YAML files, and override handling shared by every work chain."""

from aiida_multiscale.workflows.protocols.utils import (
    ProtocolMixin,
    load_protocol_file,
    merge_overrides,
    recursive_merge,
)

__all__ = ('ProtocolMixin', 'load_protocol_file', 'merge_overrides', 'recursive_merge')

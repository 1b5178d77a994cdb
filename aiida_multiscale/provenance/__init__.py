"""Lineage of a macro prediction: the handoffs behind it, the DFT calculations behind those, and their rendering."""

from aiida_multiscale.provenance.caching import cache_summary, called_calculations
from aiida_multiscale.provenance.lineage import Lineage, find_macro, trace, trace_json
from aiida_multiscale.provenance.render import render_text

__all__ = ('Lineage', 'cache_summary', 'called_calculations', 'find_macro', 'render_text', 'trace', 'trace_json')

"""The calcfunctions of the rungs (derived data of one rung: structures, fits, analyses), one module per rung.

Handoffs from one rung to the next are not here: they are the bridges (:mod:`aiida_multiscale.bridges`).
"""

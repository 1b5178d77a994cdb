"""Bridges: one calcfunction per handoff between scales, each checking physics and propagating uncertainty.

Every number that crosses from one rung of the chain to the next goes through one of these calcfunctions and comes
out as a ``HandoffData`` node (``bridge``, ``from_scale``, ``to_scale`` set; a node made by anything else sets
``producer`` instead), so the provenance graph shows where each
conversion and each assumption happened.  A failed physics check makes the calcfunction return an ``ExitCode`` from
:data:`BRIDGE_EXIT_CODES`; ``MultiscaleWorkChain`` re-raises it under the same number with the bridge's message.
"""

from __future__ import annotations

from aiida.engine import ExitCode

__all__ = ('BRIDGE_EXIT_CODES', 'BRIDGES', 'bridge_exit_code')

#: label -> (exit status, message).  300-399: unrecoverable physics failures, grouped by handoff (31x DFT -> MD,
#: 32x MD -> mesoscale, 33x mesoscale -> FEM, 34x FEM -> macro).  ``{detail}`` is filled in by the bridge.
BRIDGE_EXIT_CODES = {
    'ERROR_DFT_TO_MD_BORN_UNSTABLE': (
        310,
        'handoff dft_to_md: the DFT elastic constants violate Born stability: {detail}. Converge the DFT rung '
        '(k-points, smearing, strain range) before handing on.',
    ),
    'ERROR_DFT_TO_MD_INVALID_EOS': (
        311,
        'handoff dft_to_md: the DFT equation of state is unphysical or incomplete: {detail}.',
    ),
    'ERROR_DFT_TO_MD_INCONSISTENT': (
        312,
        'handoff dft_to_md: the bulk modulus of the EOS and (C11 + 2 C12)/3 disagree: {detail}.',
    ),
    'ERROR_MD_TO_MESOSCALE_GB_ENERGY': (
        320,
        'handoff md_to_mesoscale: the grain-boundary energy from MD is unphysical: {detail}.',
    ),
    'ERROR_MD_TO_MESOSCALE_ASSUMPTIONS': (
        321,
        'handoff md_to_mesoscale: an assumed annealing input is invalid: {detail}.',
    ),
    'ERROR_MESOSCALE_TO_FEM_GRAIN_SIZE': (
        330,
        'handoff mesoscale_to_fem: the microstructure is not resolved: {detail}. Use a larger domain, fewer grains '
        'or a thinner interface in the phase-field parameters.',
    ),
    'ERROR_MESOSCALE_TO_FEM_BORN_UNSTABLE': (
        331,
        'handoff mesoscale_to_fem: the elastic constants handed to the FEM violate Born stability: {detail}.',
    ),
    'ERROR_MESOSCALE_TO_FEM_MISSING_CONSTANTS': (
        332,
        'handoff mesoscale_to_fem: the elastic handoff lacks constants the FEM needs: {detail}. Hand on the DFT '
        "rung's elastic output (c11, c12, c44).",
    ),
    'ERROR_FEM_TO_MACRO_OUTSIDE_BOUNDS': (
        340,
        'handoff fem_to_macro: the effective Young modulus lies outside the Voigt-Reuss bounds: {detail}. The FEM '
        'mesh or boundary conditions are wrong.',
    ),
    'ERROR_FEM_TO_MACRO_POISSON': (
        341,
        'handoff fem_to_macro: the effective Poisson ratio is unphysical: {detail}.',
    ),
    'ERROR_FEM_TO_MACRO_YIELD_OUTSIDE_BOUNDS': (
        342,
        'handoff fem_to_macro: the crystal-plasticity yield strength lies outside its Sachs-Taylor interval: '
        '{detail}. The RVE mesh is too coarse for its grains or the slip systems, orientations or slip resistances '
        'do not match.',
    ),
}

#: The bridges in chain order: (calcfunction name, from_scale, to_scale).
BRIDGES = (
    ('dft_to_md', 'dft', 'md'),
    ('md_to_mesoscale', 'md', 'mesoscale'),
    ('mesoscale_to_fem', 'mesoscale', 'fem'),
    ('fem_to_macro', 'fem', 'macro'),
)


def bridge_exit_code(label: str, detail: str) -> ExitCode:
    """The ``ExitCode`` a bridge returns when the check ``label`` fails; ``detail`` names the numbers at fault."""
    status, message = BRIDGE_EXIT_CODES[label]
    return ExitCode(status, message.format(detail=detail))

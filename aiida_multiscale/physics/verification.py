"""Verification of an equation of state against the all-electron reference: the metrics nu and epsilon.

Bosoni et al., "How to verify the precision of density-functional-theory implementations via reproducible and
universal workflows", Nat. Rev. Phys. 6, 45 (2024), compare two Birch-Murnaghan equations of state ``a`` and ``b``
(parameters V0, B0, B1 = B0') with two dimensionless numbers.  The definitions below were checked against the
paper's analysis code (aiidateam/acwf-verification-scripts, ``acwf_paper_plots/quantities_for_comparison.py`` and
``plots/common/generate_periodic_tables.py``); this module is written independently of it.

* **nu**: the weighted length of the vector of relative differences, in percent::

      nu = 100 * sqrt( sum_Y [ w_Y * (Y_a - Y_b) / ((Y_a + Y_b) / 2) ]^2 ),   Y = V0, B0, B1,

  with w_V0 = 1, w_B0 = 1/20, w_B1 = 1/400 (the weights multiply the relative differences inside the square).
* **epsilon**: the rms difference of the two E(V) curves over a volume window, normalised by the spread of each curve
  in that window::

      epsilon = sqrt( <(E_a - E_b)^2> / sqrt( <(E_a - <E_a>)^2> <(E_b - <E_b>)^2> ) ),

  where ``<f>`` is the continuous average of f(V) over [0.94 V_M, 1.06 V_M], V_M = (V0_a + V0_b) / 2, and each E(V)
  is the Birch-Murnaghan curve with its minimum set to zero (E0 = 0: the curves are aligned at their minima; absolute
  energies of different codes or pseudopotentials are not comparable).  Being a ratio of energies, epsilon does not
  depend on the energy unit.  The analysis code subtracts curve a's average from curve b in the second spread
  (``Eavg2`` is computed from a's parameters); we follow the paper's formula, which uses each curve's own average:
  the two differ only at second order in the difference of the curves.

Thresholds used by Bosoni et al. (``generate_periodic_tables.py``): excellent agreement nu < 0.10, epsilon < 0.06;
good nu < 0.33, epsilon < 0.20; significant differences (outliers) nu > 1.65, epsilon > 1.0.

The reference is the average of the all-electron codes WIEN2k and FLEUR for the fcc crystal of each element (one atom
per primitive cell, PBE, not spin-polarised), shipped as ``data/acwf_ae_pbe_fcc.json`` (MIT-licensed data of
aiidateam/acwf-verification-scripts; the licence notice travels in the file).  A comparison is only meaningful on the
same footing: PBE, fcc, not spin-polarised; :func:`why_not_comparable` says why a run is not.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources

import numpy as np

from aiida_multiscale.physics.eos import EV_PER_ANGSTROM3_TO_GPA

__all__ = (
    'NU_WEIGHTS',
    'THRESHOLDS',
    'VOLUME_WINDOW',
    'BirchMurnaghan',
    'agreement',
    'compare_with_reference',
    'epsilon',
    'load_reference',
    'nu',
    'reference_eos',
    'relative_difference',
    'why_not_comparable',
)

#: Weights of the relative differences of V0, B0, B1 in nu (Bosoni et al. 2024).
NU_WEIGHTS = {'v0': 1.0, 'b0': 1.0 / 20.0, 'b1': 1.0 / 400.0}
#: nu is quoted in percent.
NU_PREFACTOR = 100.0
#: Half-width of the volume window of epsilon, relative to the mean of the two V0.
VOLUME_WINDOW = 0.06
#: Upper bounds of excellent and good agreement, and the lower bound of an outlier, per metric (Bosoni et al. 2024).
THRESHOLDS = {
    'nu': {'excellent': 0.10, 'good': 0.33, 'outlier': 1.65},
    'epsilon': {'excellent': 0.06, 'good': 0.20, 'outlier': 1.0},
}
#: Number of Gauss-Legendre nodes of the window averages: E(V) is a cubic in V^(-2/3), smooth on a +/-6 % window,
#: so 48 nodes integrate (E_a - E_b)^2 to machine precision.
_QUADRATURE_NODES = 48

_DATA_FILE = 'acwf_ae_pbe_fcc.json'


@dataclasses.dataclass(frozen=True)
class BirchMurnaghan:
    """A Birch-Murnaghan equation of state per atom: V0 [angstrom^3], B0 [GPa], B1 = dB/dP [-]."""

    v0: float
    b0: float
    b1: float

    def energy(self, volumes) -> np.ndarray:
        """E(V) - E(V0) in eV per atom, with ase's ``birchmurnaghan`` (the form the EOS fit uses)."""
        from ase.eos import birchmurnaghan

        return birchmurnaghan(
            np.asarray(volumes, dtype=float), 0.0, self.b0 / EV_PER_ANGSTROM3_TO_GPA, self.b1, self.v0
        )

    @property
    def a0_fcc(self) -> float:
        """Conventional cubic lattice parameter of an fcc crystal with this V0 per atom [angstrom]."""
        return (4.0 * self.v0) ** (1.0 / 3.0)


def relative_difference(value: float, reference: float) -> float:
    """``(value - reference) / ((value + reference) / 2)``: positive when ``value`` is the larger.

    (The analysis scripts of Bosoni et al. pass the reference first, so their signed differences have the opposite
    sign; nu and epsilon do not depend on the order.)
    """
    return 2.0 * (value - reference) / (value + reference)


def nu(a: BirchMurnaghan, b: BirchMurnaghan, weights: dict | None = None) -> float:
    """The metric nu of Bosoni et al. 2024 between two equations of state (dimensionless, in percent)."""
    weights = NU_WEIGHTS if weights is None else weights
    terms = [weights[name] * relative_difference(getattr(a, name), getattr(b, name)) for name in ('v0', 'b0', 'b1')]
    return NU_PREFACTOR * float(np.sqrt(np.sum(np.square(terms))))


def _window(a: BirchMurnaghan, b: BirchMurnaghan, half_width: float) -> tuple[float, float]:
    centre = 0.5 * (a.v0 + b.v0)
    return (1.0 - half_width) * centre, (1.0 + half_width) * centre


def epsilon(a: BirchMurnaghan, b: BirchMurnaghan, half_width: float = VOLUME_WINDOW) -> float:
    """The metric epsilon of Bosoni et al. 2024 between two equations of state (dimensionless).

    The window averages are Gauss-Legendre quadratures of the two curves (minima at zero) over
    [(1 - half_width) V_M, (1 + half_width) V_M], V_M the mean of the two V0.
    """
    low, high = _window(a, b, half_width)
    nodes, weights = np.polynomial.legendre.leggauss(_QUADRATURE_NODES)
    volumes = 0.5 * (high - low) * nodes + 0.5 * (high + low)
    weights = weights / weights.sum()  # the average over the window, not the integral

    def average(values):
        return float(np.dot(weights, values))

    energy_a, energy_b = a.energy(volumes), b.energy(volumes)
    difference = average((energy_a - energy_b) ** 2)
    spread_a = average((energy_a - average(energy_a)) ** 2)
    spread_b = average((energy_b - average(energy_b)) ** 2)
    return float(np.sqrt(difference / np.sqrt(spread_a * spread_b)))


def agreement(metric: str, value: float) -> str:
    """``'excellent'``, ``'good'``, ``'fair'`` (between good and an outlier) or ``'outlier'`` by Bosoni et al.'s
    thresholds for ``metric`` (``'nu'`` or ``'epsilon'``)."""
    bounds = THRESHOLDS[metric]
    if value < bounds['excellent']:
        return 'excellent'
    if value < bounds['good']:
        return 'good'
    if value <= bounds['outlier']:
        return 'fair'
    return 'outlier'


@functools.cache
def load_reference() -> dict:
    """The shipped reference table (source, licence, units and ``elements``: {symbol: {v0, b0, b1}})."""
    text = resources.files('aiida_multiscale.physics').joinpath('data', _DATA_FILE).read_text(encoding='utf-8')
    return json.loads(text)


def reference_eos(element: str) -> BirchMurnaghan | None:
    """The all-electron PBE fcc equation of state of ``element``; None if the table has none."""
    entry = load_reference()['elements'].get(element)
    return None if entry is None else BirchMurnaghan(entry['v0'], entry['b0'], entry['b1'])


def why_not_comparable(element: str, functional: str | None, nspin, atoms_per_cube: float | None) -> str | None:
    """Why an EOS of ``element`` cannot be compared with the reference on the same footing; None when it can.

    :param functional: the functional of the pseudopotentials (``'pbe'``, ``'lda'``, ...; None: not recorded).
    :param nspin: pw.x's nspin of the run (1: not spin-polarised).
    :param atoms_per_cube: a0^3 / V0 of the run, 4 for fcc (the reference is fcc; bcc gives 2, sc 1).
    """
    source = load_reference()['citation']
    if reference_eos(element) is None:
        return f'no all-electron reference for {element} in {source}'
    if functional is None:
        return 'the functional of the run is not recorded; the reference is PBE'
    if functional.lower() != 'pbe':
        return f'the run used {functional.upper()}; the all-electron reference of {source} is PBE'
    if nspin is not None and int(nspin) != 1:
        return f'the run is spin-polarised (nspin {nspin}); the reference of {source} is not'
    if atoms_per_cube is None:
        return f'the lattice of the run is not known; the reference of {source} is fcc'
    if abs(atoms_per_cube - 4.0) > 1e-3:
        lattice = {1: 'sc', 2: 'bcc'}.get(round(atoms_per_cube), 'not fcc')
        return f'the run is {lattice} (a0^3/V0 = {atoms_per_cube:.3g}); the reference of {source} is fcc'
    return None


def compare_with_reference(element: str, eos: BirchMurnaghan) -> dict:
    """nu, epsilon and the relative differences of ``eos`` against the reference of ``element``, with the reference.

    :raises KeyError: if the table has no reference for ``element`` (check :func:`why_not_comparable` first).
    """
    reference = reference_eos(element)
    if reference is None:
        raise KeyError(
            f'no all-electron reference for {element!r}; the table has {sorted(load_reference()["elements"])}'
        )
    values = {
        'nu': nu(eos, reference),
        'epsilon': epsilon(eos, reference),
        **{f'{name}_relative_difference': relative_difference(getattr(eos, name), getattr(reference, name))
           for name in ('v0', 'b0', 'b1')},
    }  # fmt: skip
    low, high = _window(eos, reference, VOLUME_WINDOW)
    return {
        **values,
        'agreement': {metric: agreement(metric, values[metric]) for metric in ('nu', 'epsilon')},
        'reference': {**dataclasses.asdict(reference), 'a0': reference.a0_fcc},
        'volume_window': [low, high],
    }

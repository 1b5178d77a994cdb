"""Statistics of normal grain growth: reduced units, grain sizes, the parabolic law, self-similarity, extrapolation.

The mesoscale rung simulates a few hundred grains for a reduced time; what it hands on is the grain size after the
anneal a user asked for, with its std.  This module holds the pure pieces of that answer (numpy/scipy, no database, no
MOOSE), so each can be tested on synthetic data:

* **Reduced units** (:class:`ReducedUnits`): lengths in the starting mean grain size ``d0``, time in
  ``d0^2 / (M sigma)``, i.e. ``tau = t M sigma / d0^2``.  Curvature-driven growth (boundary velocity ``v = M sigma
  kappa``) has no other scales in it, so one reduced run serves every ``(M, sigma, t)`` with the same ``tau``.
* **Grain sizes** (:func:`grain_sizes`): areas by pixel counts of a labelled periodic map, equivalent-circle diameters.
* **The growth law** (:func:`fit_growth_law`): ``d^2 - d0^2 = k t`` (Burke and Turnbull, Prog. Met. Phys. 3, 220
  (1952)), fitted by least squares after a transient that is cut by a stated criterion, with the std of ``k``.
  In 2-D it is exact on average: by von Neumann-Mullins (Mullins, J. Appl. Phys. 27, 900 (1956)) a grain with ``n``
  sides changes area at ``dA_n/dt = (pi/3) M sigma (n - 6)`` (:func:`von_neumann_mullins_rate`), and once the
  topology is statistically steady the mean area grows linearly in time.
* **Self-similarity** (:func:`stationarity`, :func:`self_similarity`): the distribution of sizes normalised by their
  mean stops changing (Hillert, Acta Metall. 13, 227 (1965), :func:`hillert_distribution`); tested by two-sample
  Kolmogorov-Smirnov distances between successive windows (and the first and last) against a threshold set by the
  grain counts.
* **Extrapolation** (:func:`extrapolate`, :func:`rescale_grain_map`): ``d(t)`` beyond the simulated time from the fitted
  law, with an ``extrapolation_factor`` and a std from the fit covariance; a self-similar map is rescaled to the
  predicted size (every length times one factor, topology kept).

Sizes: ``area_diameter = sqrt(4 <A> / pi)`` (from the mean area) is the size the law is fitted to, because ``<A>``, not
the mean diameter, is what grows exactly linearly; ``mean_diameter = <sqrt(4 A / pi)>`` is the size
``MicrostructureData`` reports.  In the self-similar state their ratio is constant, so both follow the same law.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

import numpy as np

from aiida_multiscale.physics.units import BOLTZMANN_EV, is_finite_number

__all__ = (
    'MIN_INITIAL_GRAIN_SIZE',
    'Extrapolation',
    'GrainSizes',
    'GrowthLaw',
    'ReducedUnits',
    'SelfSimilarity',
    'Stationarity',
    'extrapolate',
    'fit_growth_law',
    'grain_sizes',
    'hillert_distribution',
    'ks_threshold',
    'rescale_grain_map',
    'self_similarity',
    'stationarity',
    'von_neumann_mullins_rate',
)

#: A starting grain size below this is not a polycrystal of sharp boundaries (a boundary is about 1 nm thick, Wolf
#: and Yip, Materials Interfaces (Chapman and Hall, 1992)): normal grain growth by curvature does not apply.
MIN_INITIAL_GRAIN_SIZE = 10e-9  # m
#: SI units of the physical inputs (any pint quantity of the same dimension is converted to these).
SI_UNITS = {'initial_size': 'm', 'mobility': 'm**4/(J*s)', 'gb_energy': 'J/m**2', 'time': 's', 'length': 'm'}


# ---------------------------------------------------------------------------------------------------- reduced units
def _si(value, name: str):
    """``value`` as a float (or array) in the SI unit of ``name``: a pint quantity is converted, a number is SI already.

    A quantity of the wrong dimension (a mobility in m^2/s, a time in m) raises ``ValueError`` naming the unit needed.
    """
    unit = SI_UNITS[name]
    if hasattr(value, 'magnitude') and hasattr(value, 'to'):
        import pint

        try:
            magnitude = value.to(unit).magnitude
        except pint.errors.DimensionalityError as exc:
            raise ValueError(f'{name} must be a quantity convertible to {unit}, got one in {value.units}') from exc
    else:
        magnitude = value
    array = np.asarray(magnitude, dtype=float)
    return float(array) if array.ndim == 0 else array


@dataclasses.dataclass(frozen=True)
class ReducedUnits:
    """The reduced units of curvature-driven grain growth: length ``d0``, time ``d0^2 / (M sigma)``.

    The sharp-interface law ``v = M sigma kappa`` has ``M sigma`` (m^2/s) as its only parameter, so with lengths in
    ``d0`` and time in ``d0^2 / (M sigma)`` it has none: a simulation in reduced units serves every ``M``, ``sigma``
    and ``d0``, and the bridges convert once, here.  The rate constant of ``d^2 - d0^2 = k t`` converts as
    ``k = k_reduced M sigma`` (``k_reduced`` in ``d0^2`` per unit ``tau``).

    Build it with :meth:`from_physical` (numbers in SI, or pint quantities in any unit of the right dimension).
    """

    initial_size: float  #: d0, m (starting mean grain size)
    mobility: float  #: M, m^4/(J s)
    gb_energy: float  #: sigma, J/m^2

    def __post_init__(self):
        for name in ('initial_size', 'mobility', 'gb_energy'):
            value = getattr(self, name)
            if not (is_finite_number(value) and value > 0):
                raise ValueError(f'{name} must be one positive finite number in {SI_UNITS[name]}, got {value!r}')
            object.__setattr__(self, name, float(value))

    @classmethod
    def from_physical(cls, initial_size, mobility, gb_energy) -> ReducedUnits:
        """From ``d0`` (m), ``M`` (m^4/(J s)) and ``sigma`` (J/m^2): SI numbers or pint quantities (converted)."""
        return cls(_si(initial_size, 'initial_size'), _si(mobility, 'mobility'), _si(gb_energy, 'gb_energy'))

    @property
    def time_scale(self) -> float:
        """``d0^2 / (M sigma)`` in s, computed with pint so that a wrong unit anywhere fails loudly."""
        from aiida_multiscale.physics.units import ureg

        q = ureg.Quantity
        scale = q(self.initial_size, SI_UNITS['initial_size']) ** 2 / (
            q(self.mobility, SI_UNITS['mobility']) * q(self.gb_energy, SI_UNITS['gb_energy'])
        )
        return float(scale.to('s').magnitude)

    @property
    def diffusivity(self) -> float:
        """``M sigma`` in m^2/s: the rate constant of ``d^2`` per unit ``k_reduced``."""
        return self.mobility * self.gb_energy

    def reduced_time(self, time):
        """``tau = t M sigma / d0^2`` from ``t`` (s, or a pint quantity of time)."""
        return _si(time, 'time') / self.time_scale

    def physical_time(self, tau):
        """``t = tau d0^2 / (M sigma)`` in s."""
        return np.asarray(tau, dtype=float) * self.time_scale if np.ndim(tau) else float(tau) * self.time_scale

    def reduced_length(self, length):
        """``x / d0`` from ``x`` (m, or a pint quantity of length)."""
        return _si(length, 'length') / self.initial_size

    def physical_length(self, reduced):
        """``x = reduced d0`` in m."""
        return np.asarray(reduced, dtype=float) * self.initial_size if np.ndim(reduced) else reduced * self.initial_size

    def physical_rate_constant(self, k_reduced: float) -> float:
        """``k`` (m^2/s) of ``d^2 - d0^2 = k t`` from the reduced one (``d0^2`` per unit ``tau``): ``k_r M sigma``."""
        return float(k_reduced) * self.diffusivity

    def reduced_rate_constant(self, k: float) -> float:
        """The inverse of :meth:`physical_rate_constant`."""
        return float(k) / self.diffusivity


def arrhenius_mobility_and_std(
    prefactor: float,
    activation_energy: float,
    temperature: float,
    *,
    prefactor_std: float | None = None,
    activation_energy_std: float | None = None,
    temperature_std: float | None = None,
) -> tuple[float, float]:
    """``M = M0 exp(-Q / (k_B T))`` (the units of ``M0``; ``Q`` in eV, ``T`` in K) and its relative std.

    First order in each independent input: ``(std_M / M)^2 = (std_M0 / M0)^2 + (std_Q / kT)^2 + (Q std_T / (k T^2))^2``.
    For an ``M0`` uncertain by orders of magnitude the first-order relative std reads as the std of ``ln M``.  The one
    place the bridge to the mesoscale and the phase-field rung take ``M`` from, so that both carry the same number.
    """
    kt = BOLTZMANN_EV * temperature
    mobility = prefactor * math.exp(-activation_energy / kt)
    relative = math.sqrt(
        ((prefactor_std or 0.0) / prefactor) ** 2
        + ((activation_energy_std or 0.0) / kt) ** 2
        + (activation_energy * (temperature_std or 0.0) / (kt * temperature)) ** 2
    )
    return mobility, relative


def von_neumann_mullins_rate(sides, mobility: float, gb_energy: float):
    """``dA_n/dt = (pi/3) M sigma (n - 6)`` (m^2/s) of a 2-D grain with ``n`` sides (Mullins, J. Appl. Phys. 27, 900
    (1956), after von Neumann).

    Exact for a grain bounded by boundaries of equal energy and mobility meeting at 120 degrees, whatever their shape;
    an isolated circular grain (``n = 0``) gives ``-2 pi M sigma``, the phase-field rung's shrinking-circle check.
    """
    return math.pi / 3.0 * mobility * gb_energy * (np.asarray(sides, dtype=float) - 6.0)


# ------------------------------------------------------------------------------------------------------ grain sizes
@dataclasses.dataclass(frozen=True)
class GrainSizes:
    """Sizes of the grains of one map.  ``areas`` in the square of the pixel unit, ``diameters`` in its unit."""

    labels: np.ndarray  #: the label of each grain (the grains of a split label get new labels, see grain_sizes)
    areas: np.ndarray  #: pixel count times pixel area, per grain
    diameters: np.ndarray  #: equivalent-circle diameter sqrt(4 A / pi), per grain

    @property
    def count(self) -> int:
        return int(len(self.areas))

    @property
    def mean_area(self) -> float:
        return float(self.areas.mean())

    @property
    def mean_diameter(self) -> float:
        """``<sqrt(4 A / pi)>``: the mean equivalent-circle diameter (what ``MicrostructureData`` reports)."""
        return float(self.diameters.mean())

    @property
    def area_diameter(self) -> float:
        """``sqrt(4 <A> / pi)``: the diameter of the mean area, the size the growth law is fitted to."""
        return math.sqrt(4.0 * self.mean_area / math.pi)


def grain_sizes(labels, pixel_size: float = 1.0, split_disconnected: bool = False, min_pixels: int = 1) -> GrainSizes:
    """Areas and equivalent-circle diameters of the grains of a labelled 2-D periodic map.

    A grain is the set of pixels with one label (negative labels, unassigned pixels, are ignored).  Counting pixels by
    label is periodic by construction: a grain that leaves the box on one side and comes back on the other is still
    one label, so its two pieces are one area.  With ``split_disconnected``, a label that forms several periodic
    connected components (4-neighbour, glued across the box edges, e.g. a map of order parameters in which several
    grains share one) counts as several grains; pieces joined only across the periodic edges stay one grain.

    :param labels: integer map ``(ny, nx)``.
    :param pixel_size: edge of one square pixel (the unit of the sizes returned).
    :param split_disconnected: count each periodic connected component of a label as its own grain.
    :param min_pixels: grains with fewer pixels are dropped (a just-vanished grain leaves a few pixels of noise).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f'labels must be a 2-D integer map (ny, nx), got dtype {labels.dtype}, shape {labels.shape}')
    if not (math.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f'pixel_size must be a positive length, got {pixel_size!r}')
    if split_disconnected:
        from aiida_multiscale.engines.moose.grains import label_periodic

        split = np.full(labels.shape, -1, dtype=np.int64)
        count = 0
        for label in np.unique(labels[labels >= 0]).tolist():
            components, n = label_periodic(labels == label)
            inside = components >= 0
            split[inside] = components[inside] + count
            count += n
        labels = split
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    keep = counts >= int(min_pixels)
    if not np.any(keep):
        raise ValueError(f'the map holds no grain of at least {min_pixels} pixels')
    areas = counts[keep].astype(float) * float(pixel_size) ** 2
    return GrainSizes(labels=ids[keep], areas=areas, diameters=np.sqrt(4.0 * areas / math.pi))


def rescale_grain_map(grain_ids, pixel_size: float, target_size: float, measure: str = 'area_diameter'):
    """A self-similar map rescaled to a predicted size: the same ``grain_ids``, a new pixel size.

    In the self-similar state the microstructure at a later time is, statistically, the present one with every length
    multiplied by ``d(t) / d(now)`` (Hillert 1965): the topology (ids, neighbours, the normalised size distribution)
    is kept and only the pixel size changes.  ``measure`` picks the size definition ``target_size`` is given in
    (``'area_diameter'`` or ``'mean_diameter'``, see :class:`GrainSizes`); a uniform scaling multiplies both by the
    same factor.

    :returns: ``(grain_ids copy, new pixel size)``.
    """
    if measure not in ('area_diameter', 'mean_diameter'):
        raise ValueError(f"measure must be 'area_diameter' or 'mean_diameter', got {measure!r}")
    if not (math.isfinite(target_size) and target_size > 0):
        raise ValueError(f'target_size must be a positive length, got {target_size!r}')
    ids = np.array(grain_ids, copy=True)
    current = getattr(grain_sizes(ids, pixel_size), measure)
    return ids, float(pixel_size) * float(target_size) / current


def hillert_distribution(r, dimension: int = 2):
    """Hillert's stationary size distribution, the density of ``r = R / <R>`` (Hillert, Acta Metall. 13, 227 (1965)).

    In terms of ``u = R / R_cr``: ``P(u) = (2e)^b b u / (2 - u)^(2 + b) exp(-2b / (2 - u))`` for ``0 < u < 2``, with
    ``b = 2`` in 2-D and ``b = 3`` in 3-D; ``<u>`` is 1 in 2-D and 8/9 in 3-D, so ``u = <u> r``.  A mean-field result:
    simulations and 2-D experiments find a broader distribution (nearly log-normal), so it is the reference of a
    picture, not the test of stationarity (which compares the simulation with itself over time).
    """
    if dimension not in (2, 3):
        raise ValueError(f'dimension must be 2 or 3, got {dimension!r}')
    b = float(dimension)
    mean_u = 1.0 if dimension == 2 else 8.0 / 9.0
    u = mean_u * np.asarray(r, dtype=float)
    inside = (u > 0) & (u < 2)
    safe = np.where(inside, u, 1.0)
    density = (2 * math.e) ** b * b * safe / (2 - safe) ** (2 + b) * np.exp(-2 * b / (2 - safe))
    return mean_u * np.where(inside, density, 0.0)


# ------------------------------------------------------------------------------------------------------ growth law
def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary least squares ``y = a + k x``: ``([a, k], covariance)``, the covariance ``s^2 (X^T X)^-1`` with the
    residual variance ``s^2 = RSS / (n - 2)`` (the noise is not known beforehand: the scatter of the points is it)."""
    design = np.column_stack([np.ones_like(x), x])
    params, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = len(x) - 2
    residual = y - design @ params
    variance = float(residual @ residual) / dof if dof > 0 else float('nan')
    return params, variance * np.linalg.inv(design.T @ design)


def _curvature(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Quadratic coefficient ``c`` of ``y = a + b (x - <x>) + c (x - <x>)^2`` by least squares, and its std."""
    u = x - x.mean()
    design = np.column_stack([np.ones_like(u), u, u**2])
    params, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ params
    variance = float(residual @ residual) / (len(x) - 3)
    return float(params[2]), math.sqrt(variance * np.linalg.inv(design.T @ design)[2, 2])


@dataclasses.dataclass(frozen=True)
class GrowthLaw:
    """``d^2 = intercept + rate_constant t``, fitted on ``times[start_index:]``; units those of the data.

    ``intercept`` is the effective ``d0^2`` of the linear regime (it differs from the starting size squared by the
    transient).  ``linear`` says whether the transient criterion was met (see :func:`fit_growth_law`); when it was
    not, the fit is over the last ``min_points`` points and must not be trusted as the growth law.
    """

    rate_constant: float
    rate_constant_std: float
    intercept: float
    intercept_std: float
    covariance: np.ndarray  #: 2 x 2, of (intercept, rate_constant)
    start_index: int
    start_time: float
    end_time: float  #: last fitted time: the simulated time when the data end with the run
    n_points: int
    linear: bool
    linear_from: float  #: first time from which d^2 looks linear (the fit starts `margin` times as far from t[0])
    curvature: float  #: quadratic coefficient of d^2(t) over the window that first looked linear
    curvature_std: float
    criterion: str

    def squared_size(self, time):
        """``d^2`` of the law at ``time``."""
        return self.intercept + self.rate_constant * np.asarray(time, dtype=float)

    def squared_size_std(self, time):
        """Std of the law's ``d^2`` at ``time`` from the fit covariance: ``sqrt([1, t] C [1, t]^T)``.

        It grows linearly with ``t`` far beyond the fitted window: the further the extrapolation, the larger the std.
        """
        tt = np.asarray(time, dtype=float)
        c = self.covariance
        return np.sqrt(np.maximum(c[0, 0] + 2 * c[0, 1] * tt + c[1, 1] * tt**2, 0.0))

    def size(self, time):
        return np.sqrt(self.squared_size(time))

    def size_std(self, time):
        """Std of ``d = sqrt(d^2)``, first order: ``std(d^2) / (2 d)``."""
        return self.squared_size_std(time) / (2.0 * self.size(time))


#: Multiple of its std within which the curvature of a window counts as zero (see :func:`fit_growth_law`).
CURVATURE_Z = 2.0
#: The fit starts this many times as far from ``t0`` as the first window that looks linear.
TRANSIENT_MARGIN = 3.0


def fit_growth_law(
    times, sizes, min_points: int = 6, z: float = CURVATURE_Z, margin: float = TRANSIENT_MARGIN
) -> GrowthLaw:
    """Fit ``d^2 - d0^2 = k t`` (Burke and Turnbull 1952) after the transient; ``k`` with its std from the fit.

    **How the transient is cut.**  From a Voronoi (or any non-steady) start, ``d^2`` first grows at a rate that changes
    while the grain topology relaxes; the law holds after that.  Two steps, no hand-picked index:

    1. ``d^2`` *looks linear from* ``t_i``, the earliest time for which the window ``times[i:]`` has no significant
       curvature: its least-squares quadratic coefficient is within ``z`` std of zero (a lack-of-fit test of the
       line), ``z`` = 2 by default.
    2. The fit starts at ``t_0 + margin (t_i - t_0)``, ``margin`` = 3 by default.  A decaying transient passes the
       test as soon as it sinks into the noise, so the window that first passes still biases ``k`` by 1-3 std; three
       times as far from the start an exponential transient has decayed to the cube of its relative size there.  On
       synthetic data (exponential and power-law transients, 10-40 points with noise, 300 draws each) the mean bias
       of ``k`` was 0-0.65 std with the margin and 0.9-3.1 std without it, and 80-93 % of the fits were within 2 std
       of the true ``k`` (23-79 % without; with few points the std from few residuals is itself uncertain).

    Every window keeps at least ``min_points`` points (>= 6).  When no window looks linear the last ``min_points``
    points are fitted and ``linear`` is False.  The fit is ordinary least squares of ``d^2`` on ``t`` with the residual
    variance as the noise, so ``std(k) = s / sqrt(sum (t - <t>)^2)`` (the textbook standard error of a slope).

    :param times: increasing times from the start of the anneal (any unit: reduced or s; ``k`` comes out in size^2
        per that unit).
    :param sizes: mean grain size at each time (use :attr:`GrainSizes.area_diameter`: ``<A>`` grows linearly).
    :param min_points: fewest points a window may have.
    :param z: multiple of its std within which a curvature counts as zero.
    :param margin: the fit starts ``margin`` times as far from ``times[0]`` as the first window that looks linear.
    """
    times = np.asarray(times, dtype=float)
    sizes = np.asarray(sizes, dtype=float)
    if times.ndim != 1 or times.shape != sizes.shape:
        raise ValueError(f'times and sizes must be 1-D and of equal length, got {times.shape} and {sizes.shape}')
    if min_points < 6:
        raise ValueError(f'min_points must be >= 6 (a quadratic with 3 degrees of freedom left), got {min_points}')
    if len(times) < min_points:
        raise ValueError(
            f'{len(times)} points are too few to cut a transient and fit the growth law: give at least {min_points} '
            '(more frames of the run)'
        )
    if not (np.all(np.isfinite(times)) and np.all(np.isfinite(sizes)) and np.all(sizes > 0)):
        raise ValueError('times and sizes must be finite, sizes positive')
    if np.any(np.diff(times) <= 0):
        raise ValueError('times must increase strictly')
    squared = sizes**2
    last = len(times) - min_points
    first_linear, linear = last, False
    for i in range(last + 1):
        c, c_std = _curvature(times[i:], squared[i:])
        span = times[-1] - times[i]
        # The floor (relative to the rise of d^2) only keeps exact, noise-free data from failing on round-off.
        if abs(c) * span**2 <= z * c_std * span**2 + 1e-9 * np.ptp(squared[i:]):
            first_linear, linear = i, True
            break
    c, c_std = _curvature(times[first_linear:], squared[first_linear:])
    cut = times[0] + margin * (times[first_linear] - times[0])
    start = int(min(max(np.searchsorted(times, cut - 1e-12 * abs(cut)), first_linear), last))
    params, covariance = _line_fit(times[start:], squared[start:])
    return GrowthLaw(
        rate_constant=float(params[1]),
        rate_constant_std=float(math.sqrt(covariance[1, 1])),
        intercept=float(params[0]),
        intercept_std=float(math.sqrt(covariance[0, 0])),
        covariance=covariance,
        start_index=start,
        start_time=float(times[start]),
        end_time=float(times[-1]),
        n_points=int(len(times) - start),
        linear=linear,
        linear_from=float(times[first_linear]),
        curvature=c,
        curvature_std=c_std,
        criterion=(
            f'fit from t0 + {margin} (t_i - t0), t_i the earliest start of a window with curvature within {z} std of '
            f'zero (>= {min_points} points)'
        ),
    )


# --------------------------------------------------------------------------------------------------- extrapolation
@dataclasses.dataclass(frozen=True)
class Extrapolation:
    """The size at a requested time from the fitted law, and how far beyond the simulation that is."""

    time: float
    simulated_time: float
    extrapolation_factor: float  #: requested / simulated time; 1 when the request is within the simulation
    size: float
    size_std: float  #: from the fit covariance; grows with the extrapolation
    extrapolated: bool


def extrapolate(law: GrowthLaw, time: float, simulated_time: float | None = None) -> Extrapolation:
    """``d(time)`` from the fitted law, with ``extrapolation_factor`` = ``time / simulated_time`` (1 when none).

    Times are counted from the start of the anneal, in the unit of the fit (the factor is the same in reduced and in
    physical time, which are proportional).  ``simulated_time`` defaults to the last fitted time.  The std is that of
    the law's mean size from the fit covariance (:meth:`GrowthLaw.size_std`); it grows about linearly with the factor.
    Within the simulated time the law's value is returned too, with factor 1 and ``extrapolated`` False: the caller
    then hands on the simulated microstructure, not a rescaled one.
    """
    simulated = law.end_time if simulated_time is None else float(simulated_time)
    time = float(time)
    if not (math.isfinite(time) and time > 0 and simulated > 0):
        raise ValueError(f'the requested ({time!r}) and simulated ({simulated!r}) times must be positive')
    if law.rate_constant <= 0:
        raise ValueError(
            f'the fitted rate constant is {law.rate_constant:.3g} <= 0: the grains do not grow, nothing to extrapolate '
            '(run longer or with more grains)'
        )
    factor = max(time / simulated, 1.0)
    return Extrapolation(
        time=time,
        simulated_time=simulated,
        extrapolation_factor=factor,
        size=float(law.size(time)),
        size_std=float(law.size_std(time)),
        extrapolated=factor > 1.0,
    )


# --------------------------------------------------------------------------------------------------- self-similarity
def ks_threshold(n: float, m: float, alpha: float) -> float:
    """Critical two-sample Kolmogorov-Smirnov distance at significance ``alpha`` for sample sizes ``n`` and ``m``.

    The asymptotic Kolmogorov form ``c(alpha) sqrt((n + m) / (n m))``, ``c(alpha) = sqrt(-ln(alpha / 2) / 2)``
    (1.358 at 5 %): fewer grains allow a larger distance before the distributions count as different.
    """
    if not (0 < alpha < 1) or n <= 0 or m <= 0:
        raise ValueError(f'need 0 < alpha < 1 and positive counts, got alpha={alpha}, n={n}, m={m}')
    return math.sqrt(-math.log(alpha / 2.0) / 2.0) * math.sqrt((n + m) / (n * m))


@dataclasses.dataclass(frozen=True)
class Stationarity:
    """KS distances between windows of normalised sizes, their thresholds, and the verdict."""

    pairs: list[tuple[int, int]]  #: the windows compared: successive ones, then the first with the last
    distances: np.ndarray
    thresholds: np.ndarray
    counts: np.ndarray  #: effective grain count of each window (mean grains per frame in it)
    alpha: float  #: overall significance; each comparison is tested at alpha / comparisons (Bonferroni)
    stationary: bool

    @property
    def statistic(self) -> float:
        """``max(D / D_crit)``: <= 1 when stationary."""
        return float(np.max(self.distances / self.thresholds))


def stationarity(size_frames: t.Sequence, n_windows: int | None = None, alpha: float = 0.05) -> Stationarity:
    """Is the normalised grain-size distribution stationary?  KS distances between windows of frames in time.

    Each frame's sizes are divided by their mean (a self-similar distribution is then the same at every time, Hillert
    1965); the frames are grouped into ``n_windows`` consecutive windows (one frame each by default) whose normalised
    sizes are pooled; successive windows, and the first with the last (a slow drift passes every single step), are
    compared by the two-sample KS distance (``scipy.stats.ks_2samp``).  The distribution is stationary when every
    distance is below :func:`ks_threshold` at ``alpha / comparisons`` (Bonferroni, so that more windows do not mean
    more false alarms).  The threshold uses the *mean grain count per
    frame* of each window, not the pooled count: successive frames share most of their grains, so pooling adds little
    independent information, and counting it would make the threshold too tight.

    :param size_frames: one 1-D array of grain sizes (diameters or areas, one kind throughout) per frame, in time order;
        pass the frames after the transient.
    """
    from scipy import stats

    frames = [np.asarray(f, dtype=float) for f in size_frames]
    if any(f.ndim != 1 or len(f) < 2 or not np.all(f > 0) for f in frames):
        raise ValueError('every frame needs at least 2 positive grain sizes')
    n_windows = len(frames) if n_windows is None else int(n_windows)
    if n_windows < 2 or n_windows > len(frames):
        raise ValueError(f'need 2 <= n_windows <= frames ({len(frames)}), got {n_windows}: give more frames')
    groups = np.array_split(np.arange(len(frames)), n_windows)
    pooled = [np.concatenate([frames[k] / frames[k].mean() for k in group]) for group in groups]
    counts = np.array([np.mean([len(frames[k]) for k in group]) for group in groups])
    # Successive windows, and the first against the last: a slow drift of the shape that no single step shows.
    pairs = [(k, k + 1) for k in range(n_windows - 1)] + ([(0, n_windows - 1)] if n_windows > 2 else [])
    level = alpha / len(pairs)
    distances = np.array([stats.ks_2samp(pooled[a], pooled[b]).statistic for a, b in pairs])
    thresholds = np.array([ks_threshold(counts[a], counts[b], level) for a, b in pairs])
    return Stationarity(
        pairs=pairs,
        distances=distances,
        thresholds=thresholds,
        counts=counts,
        alpha=float(alpha),
        stationary=bool(np.all(distances <= thresholds)),
    )


@dataclasses.dataclass(frozen=True)
class SelfSimilarity:
    """The verdict on a run: the growth law, the stationarity of the distribution after the transient, and why."""

    law: GrowthLaw
    stationarity: Stationarity | None
    self_similar: bool
    reason: str


def self_similarity(
    times, area_frames: t.Sequence, n_windows: int | None = None, alpha: float = 0.05, min_points: int = 6
) -> SelfSimilarity:
    """Has the run reached statistically self-similar growth?  Both: ``d^2`` linear in ``t`` and a stationary
    normalised size distribution over the frames after the transient.

    :param times: time of each frame.
    :param area_frames: grain areas of each frame (:attr:`GrainSizes.areas`); the growth law is fitted to
        ``sqrt(4 <A> / pi)``, the stationarity tested on the equivalent-circle diameters over their mean.
    """
    frames = [np.asarray(a, dtype=float) for a in area_frames]
    if len(frames) != len(np.asarray(times)):
        raise ValueError(f'{len(frames)} frames of areas for {len(np.asarray(times))} times')
    sizes = [math.sqrt(4.0 * f.mean() / math.pi) for f in frames]
    law = fit_growth_law(times, sizes, min_points=min_points)
    reasons = []
    if not law.linear:
        reasons.append(
            f'd^2 is not linear in t in any window of >= {min_points} frames (curvature {law.curvature:.3g} '
            f'+- {law.curvature_std:.3g})'
        )
    if law.rate_constant <= 0:
        reasons.append(f'the grains do not grow (k = {law.rate_constant:.3g})')
    late = [np.sqrt(4.0 * f / math.pi) for f in frames[law.start_index :]]
    windows = None if n_windows is None else min(int(n_windows), len(late))
    test = stationarity(late, n_windows=windows, alpha=alpha) if len(late) >= 2 else None
    if test is not None and not test.stationary:
        reasons.append(
            f'the normalised size distribution still changes (max KS distance / threshold {test.statistic:.2f} > 1)'
        )
    verdict = not reasons
    return SelfSimilarity(
        law=law,
        stationarity=test,
        self_similar=verdict,
        reason='; '.join(reasons) if reasons else 'd^2 linear in t after the transient and stationary distribution',
    )

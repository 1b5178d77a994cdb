"""Grain-boundary mobility from driven MD: boundary position, velocity, M = v / P and the Arrhenius fit M0, Q.

The method is the synthetic driving force (Janssens et al., Nat. Mater. 5, 124 (2006)) in its energy-conserving form
ECO-DF (Schratt and Mohles, Comput. Mater. Sci. 182, 109774 (2020); LAMMPS ``fix orient/eco``): every atom gets an
extra energy of +u0/2 or -u0/2 depending on which grain its neighbourhood matches (the order parameter chi = +1 or -1),
so the energy per atom of the two grains differs by u0 and the boundary feels a pressure P = u0 / Omega, Omega the
volume per atom (a(T)^3 / 4 for fcc).  Not u0 / (2 Omega): the +-u0/2 split is already a difference of u0.

Pure numpy: every function here is tested on analytic data without LAMMPS or a database.

Sign convention used throughout: grain 1 is the grain with chi > 0, the one LAMMPS penalises when u0 > 0.  A boundary
displacement or velocity is positive when the boundary moves into grain 1 (grain 1 shrinks).  The velocity *in the
driven direction* is ``sign(u0)`` times that; a boundary that responds to the force has it positive.
"""

from __future__ import annotations

import dataclasses
import math
import typing as t

import numpy as np

from aiida_multiscale.physics.units import factor

__all__ = (
    'ArrheniusFit',
    'BoundaryNotMovingError',
    'Mobility',
    'MobilityEstimate',
    'Velocity',
    'atomic_volume_fcc',
    'boundary_displacement',
    'boundary_positions_from_profile',
    'combine_velocities',
    'driving_pressure',
    'fit_arrhenius',
    'grain_thickness',
    'migration_velocity',
    'mobility',
    'steady_window',
)


class BoundaryNotMovingError(ValueError):
    """The boundary did not move significantly in the driven direction: no mobility can be computed from the run."""


# -- boundary position -------------------------------------------------------------------------------------------------
def grain_thickness(order_parameter: t.Sequence[float], length: float) -> float:
    """Thickness of grain 1 along the boundary normal: the fraction of atoms with chi > 0 times the box length.

    Why a count rather than the position of one interface: in a periodic cell both boundaries move and the whole
    crystal drifts; the count is blind to rigid drift, and to the thermal flicker of single atoms it responds by one
    atom's share only (the noise of a profile crossing is a whole bin).  Atoms with chi exactly 0 (none in practice)
    count for neither grain.

    :param order_parameter: per-atom chi of one snapshot (LAMMPS ``f_eco[1]``).
    :param length: box length along the boundary normal (angstrom, or any unit: the result has the same).
    """
    chi = np.asarray(order_parameter, dtype=float)
    if chi.size == 0:
        raise ValueError('grain_thickness: no atoms')
    return float(length) * float(np.count_nonzero(chi > 0)) / chi.size


def boundary_displacement(thickness: t.Sequence[float], boundaries: int = 2) -> np.ndarray:
    """Mean displacement of the boundaries into grain 1 since the first sample: ``(h1(0) - h1(t)) / boundaries``.

    A periodic bicrystal has two boundaries, both bounding grain 1; when grain 1 shrinks by dh, each boundary has moved
    by dh / 2 into it (on average: the count cannot tell which of the two moved, and need not, as both feel the same
    P).  A slab with free surfaces has one boundary: ``boundaries=1``.
    """
    if boundaries not in (1, 2):
        raise ValueError(f'boundaries must be 1 (slab) or 2 (periodic bicrystal), got {boundaries}')
    h = np.asarray(thickness, dtype=float)
    return (h[0] - h) / boundaries


def boundary_positions_from_profile(z: t.Sequence[float], chi: t.Sequence[float], length: float) -> list[float]:
    """Positions along the normal where a periodic binned profile chi(z) changes sign (linear interpolation).

    The second method for the boundary position (the count of :func:`grain_thickness` is the first): it locates each
    boundary separately, so it shows whether both move.  ``z`` are bin centres in [0, length), in increasing order.
    """
    z = np.asarray(z, dtype=float)
    chi = np.asarray(chi, dtype=float)
    if z.shape != chi.shape or z.size < 2:
        raise ValueError('boundary_positions_from_profile: z and chi must be arrays of the same length >= 2')
    crossings = []
    for k in range(z.size):
        k2 = (k + 1) % z.size
        if chi[k] * chi[k2] < 0:
            z2 = z[k2] + (length if k2 == 0 else 0.0)
            crossings.append(float((z[k] + (z2 - z[k]) * chi[k] / (chi[k] - chi[k2])) % length))
    return sorted(crossings)


# -- velocity ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Velocity:
    """A boundary velocity with its standard uncertainty, in the unit of position / time it was fitted in."""

    value: float
    std: float
    #: Slopes of the blocks (for a single run) or the velocities combined (for replicas).
    parts: tuple[float, ...] = ()
    #: (start, end) of the fitted window, in time units (single runs only).
    window: tuple[float, float] | None = None


def steady_window(
    time: t.Sequence[float],
    thickness: t.Sequence[float],
    length: t.Sequence[float] | float,
    *,
    discard: float = 0.0,
    min_thickness: float = 0.0,
) -> tuple[float, float]:
    """The part of a run to fit: after ``discard`` (the start-up transient) and before either grain has become thinner
    than ``min_thickness`` (then the two boundaries interact through the shrinking grain and their velocity is no longer
    that of an isolated boundary; about twice the potential's cut-off is a safe choice).
    """
    time = np.asarray(time, dtype=float)
    h1 = np.asarray(thickness, dtype=float)
    h2 = np.asarray(length, dtype=float) - h1
    thin = np.nonzero((time >= discard) & (np.minimum(h1, h2) < min_thickness))[0]
    end = float(time[thin[0] - 1]) if thin.size and thin[0] > 0 else float(time[-1])
    if end <= discard:
        raise ValueError(
            f'no steady window: a grain is thinner than {min_thickness:g} before t = {discard:g}; '
            'use a thicker bicrystal or a smaller driving force'
        )
    return float(discard), end


def migration_velocity(
    time: t.Sequence[float],
    displacement: t.Sequence[float],
    *,
    window: tuple[float, float] | None = None,
    blocks: int = 4,
) -> Velocity:
    """Velocity of the boundary: the slope of a straight line through ``displacement(time)`` over ``window``.

    Its std comes from block averages: the window is cut into ``blocks`` equal parts, each gets its own slope, and
    std = (standard deviation of the block slopes) / sqrt(blocks).  Why blocks and not the residuals of the line: the
    positions are strongly correlated in time (the boundary moves in jumps of one plane and fluctuates slowly), so the
    least-squares std from the residuals, which assumes independent points, would be far too small.

    :param window: (start, end) in the unit of ``time``; the whole run when None.
    :param blocks: at least 3, so that the block std means something; each block needs at least 3 samples.
    """
    time = np.asarray(time, dtype=float)
    x = np.asarray(displacement, dtype=float)
    if time.shape != x.shape:
        raise ValueError('migration_velocity: time and displacement must have the same length')
    start, end = window if window is not None else (float(time[0]), float(time[-1]))
    mask = (time >= start) & (time <= end)
    if blocks < 3:
        raise ValueError(f'blocks must be >= 3 for a block std, got {blocks}')
    if mask.sum() < 3 * blocks:
        raise ValueError(
            f'the window {start:g}-{end:g} holds {int(mask.sum())} samples; {blocks} blocks need at least '
            f'{3 * blocks}: sample the position more often or run longer'
        )
    tw, xw = time[mask], x[mask]
    slope = float(np.polyfit(tw, xw, 1)[0])
    parts = tuple(float(np.polyfit(tw[i], xw[i], 1)[0]) for i in np.array_split(np.arange(tw.size), blocks))
    std = float(np.std(parts, ddof=1) / math.sqrt(blocks))
    return Velocity(slope, std, parts, (start, end))


def combine_velocities(velocities: t.Sequence[Velocity]) -> Velocity:
    """Replicas (runs from different velocity seeds) combined: the inverse-variance weighted mean.

    Its std is 1 / sqrt(sum of weights), scaled up by the Birge ratio sqrt(chi^2 / (n - 1)) when the replicas scatter
    more than their own stds say (never scaled down: a few replicas that happen to agree prove little).
    """
    if not velocities:
        raise ValueError('combine_velocities: no velocities given')
    values = np.array([v.value for v in velocities], dtype=float)
    stds = np.array([v.std for v in velocities], dtype=float)
    if np.any(~np.isfinite(stds)) or np.any(stds <= 0):
        raise ValueError('combine_velocities: every velocity needs a finite std > 0')
    weights = 1.0 / stds**2
    mean = float(np.sum(weights * values) / np.sum(weights))
    std = float(1.0 / math.sqrt(np.sum(weights)))
    if values.size > 1:
        chi2 = float(np.sum(weights * (values - mean) ** 2))
        std *= math.sqrt(max(1.0, chi2 / (values.size - 1)))
    return Velocity(mean, std, tuple(values.tolist()))


# -- mobility ----------------------------------------------------------------------------------------------------------
def atomic_volume_fcc(lattice_constant: float) -> float:
    """Volume per atom of an fcc crystal, a^3 / 4 (in the cube of the unit of ``a``)."""
    return float(lattice_constant) ** 3 / 4.0


def driving_pressure(u0: float, lattice_constant: float) -> float:
    """Driving pressure in Pa of ``fix orient/eco`` (or ``orient/fcc``) with energy ``u0`` (eV per atom).

    P = |u0| / Omega with Omega = a(T)^3 / 4: the two grains' energies per atom differ by u0 (each atom gets +-u0/2).
    ``lattice_constant`` is a(T) in angstrom, at the temperature of the run.
    """
    if not u0:
        raise ValueError('u0 = 0: no driving force, no pressure')
    return abs(float(u0)) / atomic_volume_fcc(lattice_constant) * factor('eV/angstrom^3', 'Pa')


@dataclasses.dataclass(frozen=True)
class Mobility:
    """M = v / P in m^4/(J s), with its std (absolute) and its std in ln units (= relative std, first order)."""

    value: float
    std: float
    velocity: float  # m/s, in the driven direction
    velocity_std: float
    pressure: float  # Pa

    @property
    def ln_std(self) -> float:
        return self.std / self.value


def mobility(velocity: Velocity, u0: float, lattice_constant: float, *, significance: float = 2.0) -> Mobility:
    """M = v / P for one temperature, refusing a boundary that did not move in the driven direction.

    :param velocity: of the boundary into grain 1 (chi > 0), in angstrom/ps (what :func:`migration_velocity` gives on
        a LAMMPS ``metal`` run), replicas already combined.
    :param u0: the ``fix orient/eco`` energy in eV/atom with its sign: u0 > 0 drives the boundary into grain 1.
    :param lattice_constant: a(T) in angstrom.
    :param significance: the velocity in the driven direction must exceed this many stds.
    :raises BoundaryNotMovingError: when it does not; the message says what to change.
    """
    if not (velocity.std >= 0 and math.isfinite(velocity.std)):
        raise ValueError(f'the velocity std must be finite and >= 0, got {velocity.std}')
    to_si = factor('angstrom/ps', 'm/s')
    driven = math.copysign(1.0, u0) * velocity.value * to_si
    std = velocity.std * to_si
    pressure = driving_pressure(u0, lattice_constant)
    if driven < -significance * std:
        raise BoundaryNotMovingError(
            f'the boundary moved against the driving force ({driven:.3g} +- {std:.2g} m/s with u0 = {u0:g} eV/atom): '
            'the orientation file probably has the two grains swapped (its first three vectors must be those of the '
            'grain with chi > 0, which u0 > 0 shrinks), or the sign of u0 is not the one assumed'
        )
    if driven <= significance * std:
        raise BoundaryNotMovingError(
            f'the boundary did not move significantly: v = {driven:.3g} +- {std:.2g} m/s is not above '
            f'{significance:g} std at P = {pressure / 1e6:.3g} MPa; raise the temperature or u0 (while keeping v '
            'linear in P), run longer or add replicas; a zero or negative mobility is never handed on'
        )
    return Mobility(driven / pressure, std / pressure, driven, std, pressure)


# -- Arrhenius ---------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MobilityEstimate:
    """M(T) from an Arrhenius fit: the value, its std in ln units, and whether T lies outside the fitted range."""

    temperature: float
    value: float
    ln_std: float
    extrapolated: bool
    #: Kelvin outside the fitted temperature range (0 inside it).
    distance: float
    #: The same distance in 1/T, as a fraction of the fitted 1/T range (0 inside; 1 = one range width beyond).
    relative_distance: float


@dataclasses.dataclass(frozen=True)
class ArrheniusFit:
    """ln M = ln M0 - Q / (k_B T), fitted with weights 1 / std_ln^2, and the covariance of (ln M0, Q).

    ``covariance`` is 2 x 2 in the order (ln M0 [ln of m^4/(J s)], Q [eV]).  ``chi2`` and ``dof`` measure how well
    the line fits within the stds; ``scaled`` says whether the covariance was scaled up by chi2 / dof.
    """

    ln_prefactor: float
    activation_energy: float
    covariance: tuple[tuple[float, float], tuple[float, float]]
    temperatures: tuple[float, ...]
    chi2: float
    dof: int
    scaled: bool

    @property
    def prefactor(self) -> float:
        """M0 in m^4/(J s)."""
        return math.exp(self.ln_prefactor)

    @property
    def prefactor_ln_std(self) -> float:
        """The std of ln M0 (M0 is uncertain by factors, so its std lives in ln units)."""
        return math.sqrt(self.covariance[0][0])

    @property
    def activation_energy_std(self) -> float:
        """The std of Q in eV."""
        return math.sqrt(self.covariance[1][1])

    @property
    def correlation(self) -> float:
        """Correlation coefficient of ln M0 and Q (close to +1: the two are not independent, always use both)."""
        c = self.covariance
        return c[0][1] / math.sqrt(c[0][0] * c[1][1])

    def as_dict(self) -> dict:
        """The fit as JSON-able metadata (what a ``gb_mobility`` handoff stores; :meth:`from_dict` reads it back)."""
        from aiida_multiscale.physics.units import BOLTZMANN_EV

        return {
            'ln_prefactor': self.ln_prefactor,
            'activation_energy': self.activation_energy,
            'covariance': [list(row) for row in self.covariance],
            'covariance_order': ['ln M0 [ln m^4/(J s)]', 'Q [eV]'],
            'chi2': self.chi2,
            'dof': self.dof,
            'scaled': self.scaled,
            'correlation': self.correlation,
            'boltzmann_constant_ev_per_k': BOLTZMANN_EV,
        }

    @classmethod
    def from_dict(cls, data: t.Mapping, temperatures: t.Sequence[float]) -> ArrheniusFit:
        """The fit from :meth:`as_dict`'s metadata and the fitted temperatures (K)."""
        return cls(
            ln_prefactor=data['ln_prefactor'],
            activation_energy=data['activation_energy'],
            covariance=tuple(tuple(row) for row in data['covariance']),
            temperatures=tuple(float(x) for x in temperatures),
            chi2=data['chi2'],
            dof=data['dof'],
            scaled=data['scaled'],
        )

    def mobility_at(self, temperature: float) -> MobilityEstimate:
        """M(T) with its std in ln units from the covariance: var = J C J^T with J = (1, -1/(k_B T)).

        The std is smallest near the weighted centre of the fitted 1/T and grows quadratically beyond the fitted range;
        ``extrapolated`` and the distances say how far outside it ``temperature`` is.
        """
        from aiida_multiscale.physics.units import BOLTZMANN_EV

        if not temperature > 0:
            raise ValueError(f'temperature must be > 0 K, got {temperature}')
        x = 1.0 / (BOLTZMANN_EV * temperature)
        jac = np.array([1.0, -x])
        var = float(jac @ np.array(self.covariance) @ jac)
        low, high = min(self.temperatures), max(self.temperatures)
        distance = max(low - temperature, temperature - high, 0.0)
        inv = 1.0 / temperature
        inv_low, inv_high = 1.0 / high, 1.0 / low
        relative = max(inv_low - inv, inv - inv_high, 0.0) / (inv_high - inv_low)
        return MobilityEstimate(
            temperature=float(temperature),
            value=math.exp(self.ln_prefactor - self.activation_energy * x),
            ln_std=math.sqrt(max(var, 0.0)),
            extrapolated=distance > 0,
            distance=float(distance),
            relative_distance=float(relative),
        )


def fit_arrhenius(
    temperatures: t.Sequence[float],
    mobilities: t.Sequence[float],
    ln_stds: t.Sequence[float],
    *,
    scale_covariance: bool = True,
) -> ArrheniusFit:
    """Weighted least-squares fit of ln M against 1 / (k_B T): M0 (m^4/(J s)) and Q (eV) with their covariance.

    Why ln M: mobilities span decades and their errors are relative, so the fit is linear and its weights 1 / std_ln^2
    are the right ones.  The covariance is (A^T W A)^-1 from the given stds; with ``scale_covariance`` it is multiplied
    by chi^2 / dof when that exceeds 1 (the points scatter more than their stds say), never scaled down.

    :param temperatures: K, at least two distinct ones (three for a chi^2 with a degree of freedom).
    :param mobilities: M at each temperature, > 0 (a non-moving boundary is refused before, by :func:`mobility`).
    :param ln_stds: std of ln M at each temperature, > 0.
    """
    from aiida_multiscale.physics.units import BOLTZMANN_EV

    temps = np.asarray(temperatures, dtype=float)
    m = np.asarray(mobilities, dtype=float)
    s = np.asarray(ln_stds, dtype=float)
    if not (temps.shape == m.shape == s.shape) or temps.ndim != 1:
        raise ValueError('fit_arrhenius: temperatures, mobilities and ln_stds must be 1-d arrays of one length')
    if np.unique(temps).size < 2:
        raise ValueError('fit_arrhenius: need mobilities at two or more distinct temperatures (three or more advised)')
    if np.any(~np.isfinite(temps)) or np.any(temps <= 0):
        raise ValueError('fit_arrhenius: temperatures must be finite and > 0 K')
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise ValueError(f'fit_arrhenius: every mobility must be > 0, got {m.tolist()}')
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f'fit_arrhenius: every ln std must be finite and > 0, got {s.tolist()}')
    x = 1.0 / (BOLTZMANN_EV * temps)
    design = np.column_stack([np.ones_like(x), -x])
    weights = 1.0 / s**2
    normal = design.T @ (weights[:, None] * design)
    covariance = np.linalg.inv(normal)
    params = covariance @ design.T @ (weights * np.log(m))
    residuals = np.log(m) - design @ params
    chi2 = float(np.sum(weights * residuals**2))
    dof = int(temps.size - 2)
    scaled = bool(scale_covariance and dof > 0 and chi2 / dof > 1.0)
    if scaled:
        covariance = covariance * (chi2 / dof)
    return ArrheniusFit(
        ln_prefactor=float(params[0]),
        activation_energy=float(params[1]),
        covariance=tuple(tuple(float(c) for c in row) for row in covariance),
        temperatures=tuple(float(v) for v in temps),
        chi2=chi2,
        dof=dof,
        scaled=scaled,
    )

"""Yield of an fcc polycrystal without finite elements: the Sachs and Taylor estimates, in plain numpy and scipy.

They are for crystal plasticity what the Voigt and Reuss averages of :mod:`aiida_multiscale.physics.elasticity` are
for elasticity: two estimates from the grains' orientations and slip resistances alone, computed without MOOSE, which
bracket what a full-field crystal-plasticity model of the same grains must give.

- **Sachs** (Z. Ver. Dtsch. Ing. 72, 734 (1928)): the stress-based, lower estimate.  Every grain carries the
  uniaxial stress state of the test, so the stress is (up to its magnitude) the one equilibrium across the boundaries
  calls for, and yields on its own, in single slip on its system of highest Schmid factor ``m``, at
  ``sigma_i = tau_c,i / m_i``.  Strain compatibility is given up: neighbouring grains slipping on different systems
  would open gaps or overlap.  The aggregate is the volume average of the grains' stresses (the macroscopic stress of
  a body is the volume average of its local stress), i.e. the weighted mean of ``tau_c,i / m_i``.  Strictly, the
  rigorous static lower bound is a uniform stress that crosses no grain's yield surface, the weakest grain's
  ``min_i tau_c,i / m_i`` (returned too); the Sachs mean lies above it and, grain by grain, below Taylor.
- **Taylor** (J. Inst. Met. 62, 307 (1938)): every grain takes the macroscopic strain rate, which is compatible by
  construction but leaves the grains' stresses out of equilibrium across their boundaries.  The grain shears on the
  combination of slip systems that produces that strain rate with the least internal work,
  ``M_i = min sum_s |gamma_dot_s| / eps_dot`` (a linear programme over the 12 systems), and the aggregate flow stress
  is the weighted mean of ``M_i tau_c,i``: the plastic work rate per volume, averaged.  By the principle of maximum
  plastic work (Bishop and Hill, Phil. Mag. 42, 414 and 1298 (1951)) this is an upper bound for rate-independent
  crystals, and ``M_i >= 1 / m_i`` grain by grain (the uniaxial stress that first activates one system is one
  admissible stress state in Bishop and Hill's maximisation), so Sachs <= Taylor always.

The strain rate imposed in Taylor's estimate is that of isochoric uniaxial tension along the loading axis ``d``:
``D = d d^T - (I - d d^T) / 2`` per unit axial rate (full constraints, axisymmetric lateral contraction), the case
of Taylor's 3.06 for random fcc and of Bishop and Hill's single-crystal values.

Conventions (those of :mod:`aiida_multiscale.physics.elasticity` and ``MicrostructureData``): an orientation is the
Bunge matrix ``g`` (Euler angles ``(phi1, Phi, phi2)`` in degrees, ``g = R_z(phi2) R_x(Phi) R_z(phi1)``), which maps
sample to crystal coordinates, ``v_crystal = g @ v_sample``; rows of ``g`` are the crystal axes in sample
coordinates.  The loading axis is sample x unless given; the slip systems are written in crystal axes.
Stresses in Pa, lengths (grain sizes) in m.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = (
    'FCC_SLIP_SYSTEMS',
    'MESH_ERROR_COEFFICIENT',
    'crystal_loading_directions',
    'hall_petch_slip_resistance',
    'hardening_increment',
    'mesh_discretisation_error',
    'sachs_factors',
    'sachs_taylor_yield',
    'schmid_factors',
    'slip_system_schmid_tensors',
    'taylor_factor',
    'taylor_factors',
    'uniaxial_tension_strain_rate',
    'yield_strength_sensitivities',
)


def _fcc_slip_systems() -> tuple[np.ndarray, np.ndarray]:
    """The 12 {111}<110> systems: for each of the 4 close-packed planes, the 3 close-packed directions lying in it.

    A plane (h k l) of the family {111} contains the <110> directions [u v w] with h u + k v + l w = 0; of the six
    <110> directions (up to sign), three satisfy that for each plane.  Normals and directions are unit vectors.
    """
    normals = [(1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1)]
    # the six <110> directions up to sign, each written once
    directions = [(1, -1, 0), (1, 0, -1), (0, 1, -1), (1, 1, 0), (1, 0, 1), (0, 1, 1)]
    planes, slips = [], []
    for n in normals:
        for b in directions:
            if sum(ni * bi for ni, bi in zip(n, b)) == 0:
                planes.append(n)
                slips.append(b)
    planes = np.array(planes, dtype=float) / math.sqrt(3.0)
    slips = np.array(slips, dtype=float) / math.sqrt(2.0)
    return planes, slips


#: ``(normals, directions)``: two ``(12, 3)`` arrays of unit vectors in crystal axes, plane normal and slip direction.
FCC_SLIP_SYSTEMS = _fcc_slip_systems()


def slip_system_schmid_tensors(systems=FCC_SLIP_SYSTEMS) -> np.ndarray:
    """Symmetric Schmid tensors ``P_s = (b_s n_s^T + n_s b_s^T) / 2``, shape ``(12, 3, 3)``, in crystal axes.

    ``P_s : sigma`` is the resolved shear stress on system ``s``, and ``sum_s gamma_dot_s P_s`` the strain rate that
    the slip rates produce (the antisymmetric part is a lattice spin, which does not enter the yield estimate).
    """
    normals, directions = systems
    outer = np.einsum('si,sj->sij', directions, normals)
    return 0.5 * (outer + outer.transpose(0, 2, 1))


def _orientation_matrices(orientations) -> np.ndarray:
    """``(n, 3, 3)`` Bunge matrices ``g``: from ``(n, 3)`` Euler angles in degrees (a 2-D array is always angles, as
    in ``MicrostructureData``) or from ``(n, 3, 3)`` matrices (one matrix: pass it as ``(1, 3, 3)``)."""
    from aiida_multiscale.physics.elasticity import bunge_matrix

    array = np.asarray(orientations, dtype=float)
    if array.ndim == 1 and array.shape == (3,):
        array = array[None, :]
    if array.ndim == 2 and array.shape[1] == 3:
        if not np.all(np.isfinite(array)):
            raise ValueError('Euler angles must be finite numbers (degrees, Bunge)')
        return np.array([bunge_matrix(*angles) for angles in array])
    if array.ndim == 3 and array.shape[1:] == (3, 3):
        orthogonal = np.allclose(np.einsum('nij,nkj->nik', array, array), np.eye(3), atol=1e-6)
        if not orthogonal or np.any(np.linalg.det(array) < 0):
            raise ValueError('orientation matrices must be proper rotations (g g^T = I, det g = +1)')
        return array
    raise ValueError(
        'orientations must be Bunge Euler angles of shape (n, 3) in degrees or Bunge matrices g of shape (n, 3, 3), '
        f'got shape {array.shape}'
    )


def crystal_loading_directions(orientations, loading_direction=(1.0, 0.0, 0.0)) -> np.ndarray:
    """The loading axis in each grain's crystal axes, ``g @ d``, shape ``(n, 3)``, unit vectors.

    :param orientations: Bunge Euler angles ``(n, 3)`` in degrees, or Bunge matrices ``g`` ``(n, 3, 3)`` (sample ->
        crystal).  A 2-D array is always read as angles, one row per grain.
    :param loading_direction: the tensile axis in sample coordinates (default x, the FEM rung's axis).
    """
    g = _orientation_matrices(orientations)
    d = np.asarray(loading_direction, dtype=float)
    if d.shape != (3,) or not np.linalg.norm(d) > 0:
        raise ValueError(f'loading_direction must be a non-zero 3-vector in sample coordinates, got {d!r}')
    return np.einsum('nij,j->ni', g, d / np.linalg.norm(d))


def schmid_factors(direction, systems=FCC_SLIP_SYSTEMS) -> np.ndarray:
    """Schmid factors ``|cos(phi) cos(lambda)| = |(d . n_s)(d . b_s)|`` of tension along ``direction`` (crystal axes).

    :param direction: ``(3,)`` or ``(n, 3)`` loading direction(s) in crystal axes (normalised here).
    :returns: shape ``(12,)`` or ``(n, 12)``.  Tension and compression give the same factors (the absolute value):
        fcc slip is not twinning-like polar.
    """
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    normals, directions = systems
    return np.abs((d @ normals.T) * (d @ directions.T))


def sachs_factors(direction, systems=FCC_SLIP_SYSTEMS) -> np.ndarray:
    """The Sachs factor ``1 / max_s m_s`` of each direction: grain yield stress over slip resistance, single slip."""
    return 1.0 / schmid_factors(direction, systems).max(axis=-1)


def uniaxial_tension_strain_rate(direction) -> np.ndarray:
    """Isochoric strain rate of uniaxial tension along ``direction``, unit axial rate: ``d d^T - (I - d d^T) / 2``.

    Axisymmetric, with the lateral contraction of plastic incompressibility (nu = 1/2): Taylor's full-constraints
    boundary condition.  Its trace is zero, as every sum of slip strain rates is.
    """
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    dd = np.outer(d, d)
    return dd - 0.5 * (np.eye(3) - dd)


# The five independent components of a traceless symmetric tensor: the sixth diagonal entry follows from the trace,
# and a redundant (linearly dependent) equality row only makes the linear programme harder for the solver.
_INDEPENDENT = ((0, 0), (1, 1), (1, 2), (0, 2), (0, 1))


def taylor_factor(direction, systems=FCC_SLIP_SYSTEMS) -> float:
    """Taylor factor ``M = min sum_s |gamma_dot_s| / eps_dot`` for tension along ``direction`` (crystal axes).

    The minimum over all slip-rate combinations that reproduce the imposed strain rate
    (:func:`uniaxial_tension_strain_rate`) exactly; with the same critical resolved shear stress on every system the
    least internal work is the physical choice (Taylor 1938).  The solution (which systems slip) is not unique
    (Taylor's ambiguity); the minimum, ``M``, is.  See :func:`taylor_factors` for how it is solved.
    """
    return float(taylor_factors(np.asarray(direction, dtype=float)[None, :], systems)[0])


def taylor_factors(directions, systems=FCC_SLIP_SYSTEMS, chunk: int = 256) -> np.ndarray:
    """Taylor factor of each row of ``directions`` ``(n, 3)`` (crystal axes) by linear programming (scipy's HiGHS).

    Unknowns: each system's slip rate split into non-negative forward and backward parts, ``gamma_dot = g+ - g-``,
    so that ``|gamma_dot|`` becomes the linear ``g+ + g-`` (at the optimum one of the two is zero).  Constraints: the
    five independent components of ``sum_s gamma_dot_s P_s = D``.  Objective: ``sum_s (g+ + g-)``.

    The grains' programmes are independent, so ``chunk`` of them are solved as one block-diagonal programme: its
    minimum is reached only when every block is at its own minimum, so each grain's ``M`` is the sum of its block of
    the solution.  One call per chunk instead of per grain cuts scipy's per-call overhead (about 6 ms, five times the
    solve) for the thousands of grains of a random-texture check.
    """
    from scipy.optimize import linprog
    from scipy.sparse import block_diag, csr_matrix

    d = np.atleast_2d(np.asarray(directions, dtype=float))
    if d.ndim != 2 or d.shape[1] != 3 or not np.all(np.isfinite(d)) or np.any(np.linalg.norm(d, axis=1) == 0):
        raise ValueError(f'directions must be non-zero 3-vectors in crystal axes, shape (n, 3), got shape {d.shape}')
    tensors = slip_system_schmid_tensors(systems)
    rows = np.array([[p[i, j] for (i, j) in _INDEPENDENT] for p in tensors]).T  # (5, n_systems)
    block = csr_matrix(np.hstack([rows, -rows]))
    width = block.shape[1]
    result = np.empty(len(d))
    for start in range(0, len(d), chunk):
        part = d[start : start + chunk]
        rhs = np.concatenate(
            [[target[i, j] for (i, j) in _INDEPENDENT] for target in map(uniaxial_tension_strain_rate, part)]
        )
        solution = linprog(
            c=np.ones(width * len(part)),
            A_eq=block_diag([block] * len(part), format='csr'),
            b_eq=rhs,
            bounds=(0, None),
            method='highs',
        )
        if solution.status != 0:
            raise RuntimeError(f'Taylor linear programme failed for directions {start}..: {solution.message}')
        result[start : start + len(part)] = solution.x.reshape(len(part), width).sum(axis=1)
    return result


def hall_petch_slip_resistance(tau0, k_tau, grain_size):
    """Initial critical resolved shear stress of a grain from its own size: ``tau_c = tau0 + k_tau / sqrt(d)``.

    Hall-Petch at the grain level: the resolved-shear-stress form of sigma_y = sigma_0 + k / sqrt(d), which divides
    by the Taylor factor (``tau0 = sigma_0 / M``, ``k_tau = k / M``).  Each grain takes its own ``d`` (e.g. its
    equivalent-circle diameter), so small grains start harder than large ones of the same orientation.

    :param tau0: friction (lattice) resistance in Pa.
    :param k_tau: Hall-Petch coefficient on the slip system in Pa m^0.5.
    :param grain_size: grain size(s) ``d`` in m (scalar or array), > 0.
    :returns: ``tau_c`` in Pa, of the shape of ``grain_size``.
    """
    d = np.asarray(grain_size, dtype=float)
    if not (np.isfinite(tau0) and tau0 >= 0):
        raise ValueError(f'tau0 = {tau0!r} must be a finite stress >= 0 in Pa')
    if not (np.isfinite(k_tau) and k_tau >= 0):
        raise ValueError(f'k_tau = {k_tau!r} must be a finite Hall-Petch coefficient >= 0 in Pa m^0.5')
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError('grain_size must be finite and > 0, in m (e.g. 25e-6 for 25 micrometres)')
    if np.any(d > 1.0):
        raise ValueError(f'grain_size up to {d.max():g} m: a grain larger than 1 m means the size is not in metres')
    tau_c = tau0 + k_tau / np.sqrt(d)
    return float(tau_c) if tau_c.ndim == 0 else tau_c


def sachs_taylor_yield(orientations, tau_c, weights=None, loading_direction=(1.0, 0.0, 0.0)) -> dict:
    """The Sachs and Taylor estimates of a polycrystal's tensile yield strength and their factors.

    :param orientations: one per grain: Bunge Euler angles ``(n, 3)`` in degrees or Bunge matrices ``(n, 3, 3)``
        (sample -> crystal), the convention of ``MicrostructureData.euler_angles``.
    :param tau_c: the grains' critical resolved shear stress in Pa: a scalar (all grains) or one per grain (e.g.
        from :func:`hall_petch_slip_resistance`).
    :param weights: area (2-D maps of columnar grains) or volume fractions; equal if omitted; normalised here.
        Stresses average over volume (the macroscopic stress is the volume average of the local one, and the plastic
        work rate per volume averages the same way), so both aggregates are the weighted arithmetic means.
    :param loading_direction: tensile axis in sample coordinates (default x).
    :returns: ``yield_strength_sachs`` and ``yield_strength_taylor`` (Pa): weighted means of ``tau_c,i / m_i`` and of
        ``M_i tau_c,i``; ``sachs_factor`` and ``taylor_factor``: weighted means of ``1 / m_i`` and ``M_i``;
        ``sachs_factor_effective`` and ``taylor_factor_effective``: yield strength over the weighted mean ``tau_c``
        (what a full-field model's "Taylor factor", yield over mean slip resistance, is to be compared with; equal to
        the plain means when every grain has the same ``tau_c``); ``yield_strength_static``: the weakest grain's
        ``tau_c,i / m_i`` (the strict lower bound); ``tau_c_mean`` (Pa); and per grain ``schmid_factor``
        (highest ``m_i``), ``sachs_factors``, ``taylor_factors`` (arrays).
    """
    directions = crystal_loading_directions(orientations, loading_direction)
    count = len(directions)
    tau = np.asarray(tau_c, dtype=float)
    if tau.ndim == 0:
        tau = np.full(count, float(tau))
    if tau.shape != (count,):
        raise ValueError(f'tau_c must be a scalar or one value per grain ({count}), got shape {tau.shape}')
    if not np.all(np.isfinite(tau)) or np.any(tau <= 0):
        raise ValueError('tau_c must be finite and > 0 in Pa (the critical resolved shear stress of each grain)')
    w = np.full(count, 1.0 / count) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (count,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise ValueError(f'weights must be one finite non-negative area or volume fraction per grain ({count})')
    w = w / w.sum()
    m = schmid_factors(directions).max(axis=-1)
    sachs = 1.0 / m
    taylor = taylor_factors(directions)
    tau_mean = float(w @ tau)
    sigma_sachs = float(w @ (tau * sachs))
    sigma_taylor = float(w @ (tau * taylor))
    return {
        'yield_strength_sachs': sigma_sachs,
        'yield_strength_taylor': sigma_taylor,
        'yield_strength_static': float(np.min((tau * sachs)[w > 0])),
        'sachs_factor': float(w @ sachs),
        'taylor_factor': float(w @ taylor),
        'sachs_factor_effective': sigma_sachs / tau_mean,
        'taylor_factor_effective': sigma_taylor / tau_mean,
        'tau_c_mean': tau_mean,
        'schmid_factor': m,
        'sachs_factors': sachs,
        'taylor_factors': taylor,
    }


def yield_strength_sensitivities(
    *,
    yield_strength: float,
    rve_taylor_factor: float,
    taylor_factor_random: float,
    hall_petch_coefficient: float,
    mean_inverse_sqrt_size: float,
    hardening_increment: float,
    tau_c_mean: float,
    saturation_strength: float,
    hardening_exponent: float,
    rate_sensitivity: float,
    rate_argument: float,
) -> dict[str, tuple[float, bool, str]]:
    """First-order derivatives of a crystal-plasticity RVE's 0.2 % offset yield strength with respect to its inputs.

    The model behind them is the one the RVE runs: each grain starts at ``tau_c,i = (sigma_0 + k / sqrt(d_i)) / M_r``
    (Hall-Petch at the slip level, ``M_r`` the random-texture Taylor factor) and the RVE yields at
    ``sigma_y = T <tau_c>``, with ``T`` the Taylor factor the RVE itself shows (its orientations and constraint, held
    fixed: it does not depend on the slip resistance's scale).  Hence, exactly for that model,

    * ``d sigma_y / d sigma_0 = T / M_r``, ``d sigma_y / d k = (T / M_r) <d^-1/2>``,
      ``d sigma_y / d M_r = -sigma_y / M_r``, and ``d sigma_y / d ln d = -(T / M_r) k <d^-1/2> / 2`` for a change
      of every grain's size by the same factor (the grain size handed on by the mesoscale);
    * the hardening reached by the offset, ``Delta sigma_h`` (``hardening_increment``, the aggregate's hardening rate
      just past yield times the 0.2 % plastic strain), scales with the Kalidindi hardening rate
      ``h = h0 (1 - tau/t_sat)^a`` at ``tau = <tau_c>``: ``d sigma_y / d ln h0 = Delta sigma_h``,
      ``d sigma_y / d ln t_sat = Delta sigma_h a x / (1 - x)`` and ``d sigma_y / d ln a = Delta sigma_h a ln(1 - x)``
      with ``x = <tau_c> / t_sat``; the latent-hardening ratio ``q`` multiplies the hardening of the latent systems
      only, so ``Delta sigma_h`` per unit ``q`` is an upper bound of its derivative;
    * the flow rule ``gamma_dot = a0 (tau / g)^(1/xm)`` makes the stress scale as ``(rate_argument)^xm``, with
      ``rate_argument = eps_dot T / (5 a0)`` (the slip rate of five active systems over the reference rate):
      ``d sigma_y / d ln xm = sigma_y xm ln(rate_argument)``.

    :returns: ``{assumption name: (derivative, in ln units?, how)}``; ``'mean_grain_size'`` for the ln d derivative.
    """
    ratio = rve_taylor_factor / taylor_factor_random
    x = min(tau_c_mean / saturation_strength, 1.0 - 1e-12)
    return {
        'friction_stress': (ratio, False, 'd sigma_y/d sigma_0 = T/M_r (Hall-Petch at the slip level)'),
        'hall_petch_coefficient': (ratio * mean_inverse_sqrt_size, False, 'd sigma_y/d k = (T/M_r) <d^-1/2>'),
        'taylor_factor_random': (-yield_strength / taylor_factor_random, False, 'd sigma_y/d M_r = -sigma_y/M_r'),
        'mean_grain_size': (
            -0.5 * ratio * hall_petch_coefficient * mean_inverse_sqrt_size,
            True,
            'd sigma_y/d ln d = -(T/M_r) k <d^-1/2>/2 (Hall-Petch)',
        ),
        'hardening_modulus': (hardening_increment, True, 'd sigma_y/d ln h0 = hardening reached at the offset'),
        'saturation_strength': (
            hardening_increment * hardening_exponent * x / (1.0 - x),
            True,
            'd sigma_y/d ln t_sat through h = h0 (1 - tau/t_sat)^a',
        ),
        'hardening_exponent': (
            hardening_increment * hardening_exponent * math.log1p(-x),
            True,
            'd sigma_y/d ln a through h = h0 (1 - tau/t_sat)^a',
        ),
        'latent_hardening_ratio': (
            hardening_increment,
            False,
            'upper bound: all of the hardening reached at the offset counted as latent',
        ),
        'rate_sensitivity': (
            yield_strength * rate_sensitivity * math.log(rate_argument),
            True,
            'd sigma_y/d ln xm = sigma_y xm ln(eps_dot T/(5 a0)) (Kalidindi flow rule)',
        ),
    }


def hardening_increment(strain, stress, yield_strain: float, offset: float = 0.002) -> float:
    """The stress the hardening adds over a plastic strain of ``offset`` just past yield: slope times ``offset``.

    The slope is a least-squares line through the points of the flow curve between ``yield_strain`` and
    ``yield_strain + offset`` (at least the two points that bracket the interval's end), so it is the aggregate's
    hardening rate where the 0.2 % offset yield is read; 0 for a curve that softens there.
    """
    strain = np.asarray(strain, dtype=float)
    stress = np.asarray(stress, dtype=float)
    inside = np.flatnonzero((strain >= yield_strain) & (strain <= yield_strain + offset))
    if inside.size < 2:
        after = np.flatnonzero(strain >= yield_strain)
        inside = after[:2] if after.size >= 2 else np.arange(max(strain.size - 2, 0), strain.size)
    slope = np.polyfit(strain[inside], stress[inside], 1)[0]
    return float(max(slope, 0.0) * offset)


#: Relative discretisation error of a crystal-plasticity RVE's yield strength times its elements per grain (per
#: layer, HEX8, one layer of columnar grains).  From the mesh series of ``benchmarks/fem.py --plasticity
#: --elements-per-grain 4,9,16,25`` (this package's MOOSE input, pip MOOSE; Al, a 9-grain map, 30 load steps to 1 %):
#: the yields 22.95, 22.78, 22.57 and 22.54 MPa at 4, 9, 16 and 25 elements per grain lie on
#: ``sigma_y(n) = sigma_inf + A / n`` with A / sigma_inf = 0.088 (least squares, residuals below 0.1 MPa; the coarse
#: mesh is the stiffer one).  docs/fem.md gives the table.
MESH_ERROR_COEFFICIENT = 0.088


def mesh_discretisation_error(elements_per_grain: float) -> float:
    """Relative error of the RVE yield strength at ``elements_per_grain``: ``MESH_ERROR_COEFFICIENT / n``.

    The FEM rung runs each RVE on one mesh, so its yield is not mesh-converged; this estimate (2.2 % at 4 elements
    per grain, 1 % at 9, 0.35 % at 25) is the std the variance budget gives it instead of pretending it converged.
    The sign is known (a coarse mesh yields high) but the value is not corrected: the law is fitted to one map.
    """
    n = float(elements_per_grain)
    if not n > 0:
        raise ValueError(f'elements_per_grain = {elements_per_grain} must be positive')
    return MESH_ERROR_COEFFICIENT / n

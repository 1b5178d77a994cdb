"""Crystal plasticity on a periodic RVE in MOOSE: the tensile flow curve of a grain map, and how to read it.

The model is the periodic RVE of :mod:`~aiida_multiscale.engines.moose.rve` (same extruded grain map, same mesh
numbering, same per-element Euler angles), with three changes that plasticity requires:

* **Large kinematics.**  Slip rotates the lattice, and the flow rule below is written for the intermediate
  configuration of ``F = F_e F_p``; so the homogenisation constraint controls all nine components of the macroscopic
  deformation gradient (the scalar ``hvar`` has ``order = NINTH``, entries column-major 11 21 31 12 22 32 13 23 33).
  Uniaxial stress along x: ``F11 - 1`` follows the applied ramp, the lower triangle ``F21 = F31 = F32 = 0`` (which
  removes the rigid rotation the periodic problem does not fix), and the remaining five first Piola-Kirchhoff
  components ``P12 P22 P13 P23 P33`` are held at zero (traction-free lateral faces on average).
* **The constitutive model.**  ``ComputeMultipleCrystalPlasticityStress`` with ``CrystalPlasticityKalidindiUpdate``:
  the power-law flow rule of Kalidindi, Bronkhorst and Anand, J. Mech. Phys. Solids 40, 537 (1992),
  ``gamma_dot_s = a0 |tau_s / g_s|^(1/xm) sign(tau_s)``, and the saturating hardening
  ``g_dot = h (1 - g / t_sat)^gss_a sum |gamma_dot|`` (latent ratio ``r``), on the 12 {111}<110> systems of
  :func:`fcc_slip_systems`.  The crystal-plasticity stress computes its own Cauchy stress from ``F``; it is handed to
  the total-Lagrangian kernels by ``ComputeLagrangianWrappedStress`` with ``rotate_old_stress = true`` (pass the
  Cauchy stress through; the default objective-rate integration of an already-objective stress double-counts the
  rotation: on a [111] crystal at 1 % strain, 35.88 against 35.19 MPa, +2 %, in this MOOSE build, git 975c9a1c).
* **The solver.**  The crystal-plasticity tangent (``tan_mod_type = exact``) is not the consistent Jacobian once
  slip starts, so plain Newton converges only linearly (and, on larger problems, runs into its iteration limit and
  cuts the step); PJFNK (matrix-free Newton-Krylov, preconditioned by an exact LU of that approximate Jacobian)
  converges fast: 3.0 against 8.7 Newton iterations a step for a one-element [001] crystal, 40 steps to 0.4 %,
  the same stress to 1e-9 relative.  No line search: the residual mixes forces (the fluctuation) and
  deformation-gradient entries (the constraints), of very different size, and backtracking on its norm stalls (the
  same run with ``line_search = bt``: 4 failed solves, each cutting the step, and 4.7 iterations a step).

Per-grain slip resistance.  ``CrystalPlasticityKalidindiUpdate`` takes one scalar ``gss_initial`` and, in this
build, no per-element property, so grains with different ``tau_c`` need different material objects.  Elements are
put into subdomains by ``ElementSubdomainIDGenerator``, **one subdomain per distinct value of tau_c** (not per
grain): grains that share a value share a block and a pair of material objects.  A uniform ``tau_c`` is then one
block, however many grains, and a Hall-Petch map has one block per grain size.  Blocks are not free: measured on a
10 x 10 map of one-element grains (this build, one thread, elastic steps), 100 blocks instead of 1 cost about 10 ms of
CPU each at setup and 2 ms each per time step, against about 3 ms per element per elastic step.  So
``tau_c_resolution`` rounds the slip resistances to a grid before grouping (error at most half of it): a Hall-Petch
map with a continuum of grain sizes then has a few tens of blocks whatever its grain count.  The Euler angles stay
per-element (``PropertyReadFile``), as in the elastic RVE, and cost nothing per grain.

Units: stresses in **MPa** inside MOOSE (elastic constants, slip resistances, hardening moduli, and the stresses the
postprocessors report): the crystal-plasticity update's internal tolerances are absolute in places (``zero_tol``),
and MPa keeps its numbers of order 1-1e5.  Lengths in pixels (the result does not depend on the absolute size), time
in seconds (the flow rule is rate-dependent: ``a0`` and the strain rate are in 1/s).
"""

from __future__ import annotations

import dataclasses
import numbers
import typing as t

import numpy as np

from aiida_multiscale.engines.moose.hit import render_hit
from aiida_multiscale.engines.moose.rve import (
    EULER_FILE,
    homogenisation_kernels,
    homogenisation_materials,
    homogenisation_parameters,
    homogenisation_variables,
    periodic_bcs,
    rank_two_averages,
    rve_grid,
    rve_mesh,
)
from aiida_multiscale.engines.moose.solid_mechanics import euler_angles_csv, euler_angles_reader
from aiida_multiscale.physics.elasticity import born_stability_violations

__all__ = (
    'DEFAULT_HARDENING',
    'EULER_FILE',
    'FILE_BASE',
    'SLIP_SYSTEMS_FILE',
    'STRESS_UNIT',
    'CpRveModel',
    'build_cp_rve_input',
    'build_single_crystal_input',
    'fcc_slip_systems',
    'flow_curve',
    'flow_curve_analysis',
    'rate_sensitivity_factor',
)

FILE_BASE = 'cp_rve'
SLIP_SYSTEMS_FILE = 'fcc_slip_systems.txt'
#: The stress unit of the model: elastic constants, slip resistances and hardening moduli go in, stresses come out.
STRESS_UNIT = 'MPa'
#: Kalidindi hardening (MPa for ``h`` and ``t_sat``): MOOSE's defaults for ``gss_a`` and ``r``; ``h`` and ``t_sat``
#: must be chosen for the material (``t_sat`` above every grain's ``tau_c``).
DEFAULT_HARDENING = {'gss_a': 2.5, 'r': 1.0}
_HARDENING_KEYS = ('h', 't_sat', 'gss_a', 'r')
_AXES = 'xyz'
#: Postprocessors written to the CSV every step (volume averages; every element has the same volume).
#: ``pk1_*`` and ``cauchy_xx`` in MPa, ``F_*`` dimensionless.
_TENSORS = {
    'pk1': ('pk1_stress', ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))),
    'cauchy': ('cauchy_stress', ((0, 0),)),
    'F': ('deformation_gradient', ((0, 0), (1, 1), (2, 2))),
}


def fcc_slip_systems() -> str:
    """The 12 {111}<110> slip systems in MOOSE's ``slip_sys_file_name`` format: ``n1 n2 n3 b1 b2 b3`` per line.

    Plane normal first, then the slip direction, in crystal axes (MOOSE normalises both).  The four {111} planes,
    each with the three <110> directions that lie in it (``n . b = 0``); a system and its reverse (``-b``) are one
    system, since the flow rule is odd in the resolved shear stress.
    """
    normals = ((1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1))
    lines = []
    for n in normals:
        for b in ((0, 1, -1), (1, 0, -1), (1, -1, 0), (0, 1, 1), (1, 0, 1), (1, 1, 0)):
            if np.dot(n, b) == 0:
                lines.append(' '.join(str(v) for v in (*n, *b)))
    return '\n'.join(lines) + '\n'


@dataclasses.dataclass
class CpRveModel:
    """A rendered MOOSE input, the files it needs, and what its results mean."""

    input_text: str
    files: dict[str, bytes]
    element_grains: np.ndarray  # (ny_el, nx_el) grain id of every element column (row j = y)
    block_tau_c: dict[int, float]  # subdomain id -> initial slip resistance (MPa)
    strain: float  # final F11 - 1
    strain_rate: float  # 1/s
    steps: int
    layers: int
    stress_unit: str = STRESS_UNIT


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _hardening(hardening) -> dict[str, float]:
    if not isinstance(hardening, t.Mapping):
        raise ValueError(
            'hardening must be a mapping with h and t_sat (MPa) and optionally gss_a and r, '
            f'e.g. {{"h": 10.0, "t_sat": 20.0}}; got {hardening!r}'
        )
    unknown = sorted(set(hardening) - set(_HARDENING_KEYS))
    if unknown:
        raise ValueError(f'hardening has unknown keys {unknown}: use only {list(_HARDENING_KEYS)}')
    values = {**DEFAULT_HARDENING, **hardening}
    missing = [key for key in _HARDENING_KEYS if key not in values]
    if missing:
        raise ValueError(f'hardening needs {missing} (h and t_sat in MPa): give them for the material')
    for key, value in values.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value):
            raise ValueError(f'hardening[{key!r}] must be a finite number, got {value!r}')
    if values['h'] < 0 or values['t_sat'] <= 0 or values['gss_a'] <= 0 or values['r'] < 0:
        raise ValueError(f'hardening must have h >= 0, t_sat > 0, gss_a > 0 and r >= 0, got {values}')
    return {key: float(value) for key, value in values.items()}


def _check_arguments(grain_ids, euler, tau_c, constants, hardening, strain, strain_rate, steps, scale, a0, xm):
    """Refuse what would give a wrong or unsolvable model, each message naming the problem and the fix."""
    errors = born_stability_violations(*constants)
    if errors:
        raise ValueError('elastic constants are not Born-stable: ' + '; '.join(errors))
    if grain_ids.ndim != 2 or min(grain_ids.shape) < 1:
        raise ValueError(f'grain_ids must be a 2-D (ny, nx) map, got shape {grain_ids.shape}')
    if euler.ndim != 2 or euler.shape[1] != 3 or not np.all(np.isfinite(euler)):
        raise ValueError('euler must be finite (n_grains, 3) Bunge angles in degrees, one row per grain id')
    if tau_c.ndim != 1 or len(tau_c) != len(euler):
        raise ValueError(
            f'{tau_c.size} values of tau_c for {len(euler)} grains (rows of Euler angles): give one initial slip '
            'resistance per grain id, in the order of the Euler angles'
        )
    if grain_ids.min() < 0 or grain_ids.max() >= len(euler):
        raise ValueError(
            f'grain ids run {grain_ids.min()}..{grain_ids.max()} but there are {len(euler)} rows of Euler angles: '
            'give one (phi1, Phi, phi2) row and one tau_c per grain id'
        )
    if not np.all(np.isfinite(tau_c)) or tau_c.min() <= 0:
        raise ValueError(
            f'tau_c must be positive and finite (initial critical resolved shear stress, MPa), got min {tau_c.min()}: '
            'give the slip resistance of every grain in MPa'
        )
    if tau_c.max() >= hardening['t_sat']:
        raise ValueError(
            f'tau_c up to {tau_c.max()} MPa reaches the saturation strength t_sat = {hardening["t_sat"]} MPa: the '
            'hardening law (1 - g/t_sat)^gss_a is then undefined; raise hardening["t_sat"] above every tau_c'
        )
    if not 0 < strain <= 0.2:
        raise ValueError(f'strain (final F11 - 1) must be in (0, 0.2], got {strain}')
    if not strain_rate > 0:
        raise ValueError(f'strain_rate must be positive (1/s), got {strain_rate}')
    if not _is_int(steps) or not 1 <= steps <= 100_000:
        raise ValueError(f'steps must be an integer in [1, 100000], got {steps!r}')
    if not 0 < a0 or not 0 < xm <= 1:
        raise ValueError(f'a0 (1/s) must be positive and xm in (0, 1], got a0 = {a0}, xm = {xm}')
    mesh_scale, layers = scale
    if not 0 < mesh_scale <= 4:
        raise ValueError(f'mesh_scale (elements per pixel) must be in (0, 4], got {mesh_scale}')
    if not _is_int(layers) or not 1 <= layers <= 8:
        raise ValueError(f'layers (elements along the extrusion z) must be an integer in [1, 8], got {layers!r}')


def build_cp_rve_input(
    grain_ids,
    euler,
    c11: float,
    c12: float,
    c44: float,
    tau_c,
    *,
    hardening: t.Mapping[str, float],
    strain: float = 0.01,
    strain_rate: float = 1e-3,
    steps: int = 100,
    mesh_scale: float = 1.0,
    layers: int = 1,
    a0: float = 1e-3,
    xm: float = 0.1,
    tau_c_resolution: float | None = None,
) -> CpRveModel:
    """Render the crystal-plasticity RVE input: uniaxial-stress tension along x of the extruded, periodic grain map.

    ``F11 - 1`` rises linearly from 0 to ``strain`` over ``strain / strain_rate`` seconds in ``steps`` equal steps.
    Keep the strain increment ``strain / steps`` at about 1e-4 or less through the elastic-plastic transition: the
    knee is where the result depends on the step.  A step whose constitutive update fails is cut back automatically.

    :param grain_ids: ``(ny, nx)`` grain id per pixel of a periodic map (``MicrostructureData.grain_ids``).
    :param euler: ``(n_grains, 3)`` Bunge angles in degrees, crystal -> sample (as the elastic RVE).
    :param c11, c12, c44: cubic elastic constants in MPa (:data:`STRESS_UNIT`).
    :param tau_c: ``(n_grains,)`` initial slip resistance of each grain in MPa (``gss_initial``), e.g. from
        :func:`~aiida_multiscale.physics.plasticity.hall_petch_slip_resistance` converted to MPa.
    :param hardening: ``{'h': MPa, 't_sat': MPa, 'gss_a': -, 'r': -}`` of the Kalidindi hardening law; ``gss_a`` and
        ``r`` default to :data:`DEFAULT_HARDENING`; ``t_sat`` must exceed every ``tau_c``.
    :param strain: final ``F11 - 1``.
    :param strain_rate: ``d(F11)/dt`` in 1/s (the flow rule is rate-dependent: see :func:`rate_sensitivity_factor`).
    :param steps: number of equal time steps.
    :param mesh_scale: elements per pixel along x and y.
    :param layers: elements along the extrusion axis z.
    :param a0: reference slip rate of the flow rule, 1/s.
    :param xm: rate-sensitivity exponent of the flow rule (``1/xm`` is the power-law exponent).
    :param tau_c_resolution: if given (MPa), every ``tau_c`` is rounded to the nearest multiple of it before grains are
        grouped into blocks (fewer material objects; see the module docstring).  ``None`` keeps the exact values.
    :raises ValueError: with the fix, for inconsistent grains, non-physical constants or a mesh too large.
    """
    grain_ids = np.asarray(grain_ids)
    euler = np.asarray(euler, dtype=float)
    if euler.ndim == 1 and euler.size == 3:
        euler = euler.reshape(1, 3)
    tau_c = np.atleast_1d(np.asarray(tau_c, dtype=float))
    hardening = _hardening(hardening)
    _check_arguments(
        grain_ids,
        euler,
        tau_c,
        (c11, c12, c44),
        hardening,
        strain,
        strain_rate,
        steps,
        (mesh_scale, layers),
        a0,
        xm,
    )
    shape, lengths, element_grains = rve_grid(grain_ids, mesh_scale, layers)
    nz = shape[2]
    # libMesh numbers the elements of a generated box x fastest, then y, then z: the (ny, nx) map once per layer.
    per_element_grain = np.tile(element_grains.ravel(), nz)
    csv = euler_angles_csv(euler, element_grains, nz)

    if tau_c_resolution is not None:
        if not tau_c_resolution > 0 or not np.isfinite(tau_c_resolution):
            raise ValueError(f'tau_c_resolution must be a positive number of MPa or None, got {tau_c_resolution!r}')
        tau_c = np.round(tau_c / tau_c_resolution) * tau_c_resolution
        if tau_c.min() <= 0 or tau_c.max() >= hardening['t_sat']:
            raise ValueError(
                f'tau_c_resolution = {tau_c_resolution} MPa rounds tau_c out of (0, t_sat): use a finer resolution'
            )
    # One subdomain per distinct tau_c among the grains present in the mesh.
    present = np.unique(per_element_grain)
    values = sorted({float(tau_c[g]) for g in present})
    block_of_value = {value: block for block, value in enumerate(values)}
    element_blocks = np.array([block_of_value[float(tau_c[g])] for g in per_element_grain])
    block_tau_c = {block: value for value, block in block_of_value.items()}

    end_time = strain / strain_rate
    dt = end_time / steps

    # One block (no subdomain generator) when every grain has the same tau_c.
    mesh = rve_mesh(shape, lengths, element_blocks.tolist() if len(values) > 1 else None)

    aux_variables, aux_kernels, postprocessors = rank_two_averages(
        (f'{prefix}_{_AXES[i]}{_AXES[j]}', tensor, i, j)
        for prefix, (tensor, components) in _TENSORS.items()
        for i, j in components
    )
    postprocessors['nl_its'] = {'type': 'NumNonlinearIterations'}

    materials: dict[str, t.Any] = {
        **homogenisation_materials(c11, c12, c44),
        # Passthrough of the crystal-plasticity Cauchy stress to the Lagrangian kernels (see the module docstring).
        'stress': {'type': 'ComputeLagrangianWrappedStress', 'rotate_old_stress': True},
    }
    for block, value in block_tau_c.items():
        materials[f'cp_stress_{block}'] = {
            'type': 'ComputeMultipleCrystalPlasticityStress',
            'block': block,
            'crystal_plasticity_models': f'kalidindi_{block}',
            'tan_mod_type': 'exact',
        }
        materials[f'kalidindi_{block}'] = {
            'type': 'CrystalPlasticityKalidindiUpdate',
            'block': block,
            'number_slip_systems': 12,
            'slip_sys_file_name': SLIP_SYSTEMS_FILE,
            'gss_initial': value,
            't_sat': hardening['t_sat'],
            'h': hardening['h'],
            'gss_a': hardening['gss_a'],
            'r': hardening['r'],
            'ao': float(a0),
            'xm': float(xm),
        }

    blocks: dict[str, t.Any] = {
        'GlobalParams': homogenisation_parameters(
            True,
            # Column-major 11 21 31 12 22 32 13 23 33: F11 ramped, lower triangle fixed, the rest stress-free.
            ['strain'] * 3 + ['stress', 'stress', 'strain'] + ['stress'] * 3,
            # One target function per entry; '0' is MOOSE's constant-zero function.
            ['stretch_xx', '0', '0', '0', '0', '0', '0', '0', '0'],
        ),
        'Mesh': mesh,
        'Variables': homogenisation_variables('NINTH'),
        'Kernels': homogenisation_kernels(),
        'Functions': {
            'stretch_xx': {'type': 'PiecewiseLinear', 'x': [0.0, end_time], 'y': [0.0, float(strain)]},
        },
        'BCs': periodic_bcs(),
        'AuxVariables': aux_variables,
        'AuxKernels': aux_kernels,
        'UserObjects': euler_angles_reader(EULER_FILE),
        'Materials': materials,
        'Postprocessors': postprocessors,
        'Preconditioning': {'smp': {'type': 'SMP', 'full': True}},
        'Executioner': {
            'type': 'Transient',
            'solve_type': 'PJFNK',
            'line_search': 'none',
            'petsc_options_iname': ['-pc_type'],
            'petsc_options_value': ['lu'],
            'nl_rel_tol': 1e-8,
            'nl_abs_tol': 1e-8,
            'nl_max_its': 20,
            'l_max_its': 50,
            'l_tol': 1e-6,
            'start_time': 0.0,
            'end_time': end_time,
            'dt': dt,
            # A failed constitutive update (stiff flow rule, small xm) cuts the step; it grows back afterwards.
            'dtmin': dt / 256,
        },
        'Outputs': {'file_base': FILE_BASE, 'csv': True, 'exodus': False, 'perf_graph': False},
    }
    files = {EULER_FILE: csv.encode(), SLIP_SYSTEMS_FILE: fcc_slip_systems().encode()}
    return CpRveModel(
        render_hit(blocks), files, element_grains, block_tau_c, float(strain), float(strain_rate), int(steps), nz
    )


def build_single_crystal_input(
    euler,
    c11: float,
    c12: float,
    c44: float,
    tau_c: float,
    *,
    elements: int = 1,
    **parameters,
) -> CpRveModel:
    """One grain filling the periodic box (``elements`` per edge): a single crystal under uniaxial stress along x.

    Under periodic conditions a homogeneous crystal deforms homogeneously, so one element is exact and more only
    check that; it is the model's check against the single-crystal analytic yield (:func:`rate_sensitivity_factor`)
    and directional modulus.  Other keywords as :func:`build_cp_rve_input`.
    """
    if not _is_int(elements) or not 1 <= elements <= 4:
        raise ValueError(f'elements (per edge of the single-crystal box) must be an integer 1..4, got {elements!r}')
    return build_cp_rve_input(
        np.zeros((1, 1), dtype=int),
        np.asarray(euler, dtype=float).reshape(1, 3),
        c11,
        c12,
        c44,
        [tau_c],
        mesh_scale=elements,
        layers=elements,
        **parameters,
    )


# ------------------------------------------------------------------------------------------------- post-processing
def flow_curve(series: t.Mapping[str, t.Sequence[float]], stress: str = 'cauchy') -> tuple[np.ndarray, np.ndarray]:
    """``(strain, stress)`` of the run from its CSV columns, the unloaded state ``(0, 0)`` first.

    :param series: the CSV columns (e.g. from ``parse_csv``).
    :param stress: ``'cauchy'`` (true stress, ``cauchy_xx``) or ``'pk1'`` (nominal stress, ``pk1_xx``), MPa.
    :returns: engineering strain ``F11 - 1`` and the stress along x.
    """
    columns = {'cauchy': 'cauchy_xx', 'pk1': 'pk1_xx'}
    if stress not in columns:
        raise ValueError(f"stress must be 'cauchy' or 'pk1', got {stress!r}")
    f11 = np.asarray(series['F_xx'], dtype=float)
    sigma = np.asarray(series[columns[stress]], dtype=float)
    keep = np.asarray(series['time'], dtype=float) > 0  # MOOSE writes the initial state too
    return np.concatenate([[0.0], f11[keep] - 1.0]), np.concatenate([[0.0], sigma[keep]])


def flow_curve_analysis(
    strain, stress, youngs_modulus: float | None = None, *, offset: float = 0.002, flow_strain: float = 0.02
) -> dict[str, float | None]:
    """Young's modulus, the ``offset`` (0.2 %) yield strength and the flow stress at ``flow_strain`` of a tensile curve.

    * ``E``: given, or the secant of the first step, ``stress[1] / strain[1]`` from the unloaded first point (a curve
      that does not start at ``(0, 0)`` takes the secant of its first point).  The first step must be elastic: with a
      rate-dependent flow rule that holds when the step's stress is well below the yield stress.
    * Yield: the first crossing of the curve with the offset line ``E (strain - offset)``, by linear interpolation
      between the two points that bracket it (exact on a piecewise-linear curve).
    * Flow stress: the stress at ``flow_strain`` by linear interpolation, ``None`` if the curve ends before it.

    :raises ValueError: if the curve never crosses the offset line (load further) or is not increasing in strain.
    """
    strain = np.asarray(strain, dtype=float)
    stress = np.asarray(stress, dtype=float)
    if strain.shape != stress.shape or strain.ndim != 1 or strain.size < 2:
        raise ValueError('strain and stress must be 1-D arrays of the same length, at least 2 points')
    if np.any(np.diff(strain) <= 0):
        raise ValueError('strain must increase strictly from point to point (a monotonic tensile test)')
    if youngs_modulus is None:
        if strain[0] == 0:
            youngs_modulus = (stress[1] - stress[0]) / strain[1]
        else:
            youngs_modulus = stress[0] / strain[0]
    youngs_modulus = float(youngs_modulus)
    excess = stress - youngs_modulus * (strain - offset)
    below = np.flatnonzero(excess <= 0)
    if below.size == 0 or below[0] == 0:
        raise ValueError(
            f'the curve does not cross the {offset:g} offset line (its last strain is {strain[-1]:g}): load further'
        )
    k = below[0]
    w = excess[k - 1] / (excess[k - 1] - excess[k])
    yield_strain = strain[k - 1] + w * (strain[k] - strain[k - 1])
    yield_strength = stress[k - 1] + w * (stress[k] - stress[k - 1])
    # A curve that ends at the flow strain up to round-off (F11 - 1 of the last step) still has the flow stress.
    reached = strain[-1] >= flow_strain * (1 - 1e-9)
    flow = float(np.interp(min(flow_strain, strain[-1]), strain, stress)) if reached else None
    return {
        'youngs_modulus': youngs_modulus,
        'yield_strength': float(yield_strength),
        'yield_strain': float(yield_strain),
        'offset': float(offset),
        'flow_stress': flow,
        'flow_strain': float(flow_strain),
    }


def rate_sensitivity_factor(strain_rate: float, a0: float, xm: float, m: float, n_active: int) -> float:
    """``(eps_dot / (N m a0))^xm``: the steady flow stress of a crystal over its rate-independent ``tau_c / m``.

    Derivation, for the flow rule ``gamma_dot_s = a0 |tau_s / g|^(1/xm)`` (Kalidindi, Bronkhorst and Anand 1992)
    under uniaxial stress ``sigma`` along ``d``: a system resolves ``tau_s = m_s sigma`` (Schmid), and contributes
    ``m_s gamma_dot_s`` to the axial plastic strain rate (the stretch ``d . (b_s n_s^T) d = m_s`` per unit slip).  In
    steady flow the elastic strain no longer changes, so the plastic rate is the applied ``eps_dot``.  With the ``N``
    systems of highest Schmid factor ``m`` carrying it alike (the others contribute ``(m_s / m)^(1/xm)`` as much,
    negligible for a small ``xm``) and ``g ~ tau_c`` (little hardening by the yield point)::

        eps_dot = N m a0 (m sigma / tau_c)^(1/xm)   =>   sigma = (tau_c / m) (eps_dot / (N m a0))^xm

    The factor is 1 only when ``eps_dot = N m a0``; the 0.2 % offset yield of a single crystal is this steady stress
    when the transition is sharp (small ``xm``).  The lattice rotation at small strain is neglected.

    :param strain_rate: axial strain rate, 1/s.
    :param a0: reference slip rate, 1/s.
    :param xm: rate-sensitivity exponent.
    :param m: highest Schmid factor.
    :param n_active: number of systems sharing it.
    """
    if strain_rate <= 0 or a0 <= 0 or xm <= 0 or m <= 0 or n_active < 1:
        raise ValueError('strain_rate, a0, xm and m must be positive and n_active at least 1')
    return float((strain_rate / (n_active * m * a0)) ** xm)

"""Builder of the framework-only multi-order-parameter Allen-Cahn grain-growth model (Moelans 2008) for MOOSE.

The model uses MOOSE *framework* objects only, so the input runs on any MOOSE application (the pip ``rabbit-fem``
has no phase_field module).  Per order parameter ``eta_i``:

* ``TimeDerivative``;
* ``MatDiffusion`` with diffusivity ``L kappa``;
* the bulk driving force ``L mu dF_i``, ``dF_i = eta_i^3 - eta_i + 2 gamma eta_i sum_{j != i} eta_j^2``, as two
  ``MatReaction`` kernels around one shared parsed material for ``sum_j eta_j^2`` (``formulation='split'``, see
  :func:`_split_bulk`), or as the first formulation, one ``DerivativeParsedMaterial`` per order parameter and
  ``MatBodyForce`` (``formulation='pairwise'``, kept for ``benchmarks/phase_field.py``).

Moelans' relations for ``gamma = 1.5`` (the same as MOOSE's ``GBEvolution``): ``mu = 6 sigma / l``,
``kappa = 3/4 sigma l``, ``L = 4 M / (3 l)``, with GB energy ``sigma``, interface width ``l`` and mobility ``M``.
MOOSE works in nm, ns and eV: the SI inputs are written as top-level HIT variables and converted with ``${fparse}``
inside the file, so a reader sees the physical numbers and the system stays well scaled (residuals near 1).

Time integration is implicit Euler (NEWTON or PJFNK) or, where it is cheaper for the requested ``dt_max``, forward
Euler with a lumped mass at the stable step (``time_integration='auto'``): the cost of an implicit step is dominated by
the N^2 Jacobian blocks MOOSE assembles, which an explicit step does not need (docs/phase_field.md, Performance).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing as t

import numpy as np

from aiida_multiscale.engines.moose.hit import Expression, Variable, render_hit
from aiida_multiscale.physics.grain_growth import arrhenius_mobility_and_std
from aiida_multiscale.physics.units import BOLTZMANN_EV, factor

__all__ = (
    'CircleStart',
    'FunctionStart',
    'LENGTH_UNIT',
    'TIME_UNIT',
    'GrainGrowthInput',
    'RestartStart',
    'VoronoiStart',
    'arrhenius_mobility',
    'build_grain_growth_input',
    'build_reduced_grain_growth_input',
    'explicit_stable_dt',
    'interface_width',
    'model_constants',
    'reduced_model_constants',
)

#: The units of the model inside MOOSE (well-scaled numbers); energies are in eV.
LENGTH_UNIT, TIME_UNIT = 'nm', 'ns'
#: SI lengths and times in the model's units.
M_TO_NM = factor('m', LENGTH_UNIT)
S_TO_NS = factor('s', TIME_UNIT)
NS_TO_S = factor(TIME_UNIT, 's')
#: 1 J/m^2 in eV/nm^2 and 1 m^4/(J s) in nm^4/(eV ns).
J_PER_M2_TO_EV_PER_NM2 = factor('J/m^2', 'eV/nm^2')
M4_PER_JS_TO_NM4_PER_EVNS = factor('m^4/(J*s)', 'nm^4/(eV*ns)')
#: Moelans' gamma: symmetric interfaces, the profile of which gives the relations above.
GAMMA = 1.5
#: Elements across the diffuse interface when the parameters do not give its width: the shrinking-grain rate then errs
#: by about +3 % against von Neumann-Mullins (+2.5 % on a 100 x 100 grid, +5.6 % on 64 x 64).
DEFAULT_INTERFACE_ELEMENTS = 4


def interface_width(domain_size: float, grid: int, width: float | None = None) -> float:
    """The interface width (m): ``width`` if given, else :data:`DEFAULT_INTERFACE_ELEMENTS` elements of the grid."""
    return float(width) if width is not None else DEFAULT_INTERFACE_ELEMENTS * float(domain_size) / int(grid)


def arrhenius_mobility(prefactor: float, activation_energy: float, temperature: float) -> float:
    """``M = M0 exp(-Q / (k_B T))`` in the units of ``prefactor`` (``Q`` in eV, ``T`` in K)."""
    return arrhenius_mobility_and_std(prefactor, activation_energy, temperature)[0]


def model_constants(gb_energy: float, mobility: float, interface_width: float) -> dict[str, float]:
    """Model parameters in MOOSE's internal units (nm, ns, eV) from SI inputs.

    :param gb_energy: sigma in J/m^2.
    :param mobility: M in m^4/(J s).
    :param interface_width: l in m.
    :returns: ``{'sigma' eV/nm^2, 'M' nm^4/(eV ns), 'width' nm, 'mu' eV/nm^3, 'kappa' eV/nm, 'L' nm^3/(eV ns)}``.
    """
    sigma = gb_energy * J_PER_M2_TO_EV_PER_NM2
    m = mobility * M4_PER_JS_TO_NM4_PER_EVNS
    width = interface_width * M_TO_NM
    return {
        'sigma': sigma,
        'M': m,
        'width': width,
        'mu': 6 * sigma / width,
        'kappa': 0.75 * sigma * width,
        'L': 4 * m / (3 * width),
    }


@dataclasses.dataclass(frozen=True)
class VoronoiStart:
    """A periodic Voronoi polycrystal: seed points (m), the op of each grain, and Euler angles (deg) per grain."""

    seeds: np.ndarray
    ops: t.Sequence[int]
    euler_angles: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class RestartStart:
    """Continue from nodal fields in an Exodus file (the last step in it), e.g. after a re-colouring."""

    filename: str = 'restart.e'


@dataclasses.dataclass(frozen=True)
class CircleStart:
    """A circular grain (op 0) of ``radius`` (m) centred in the domain, in a matrix grain (op 1): the test case."""

    radius: float
    profile: str = 'tanh'


@dataclasses.dataclass(frozen=True)
class FunctionStart:
    """One parsed-function expression per order parameter, in x, y in nm (e.g. a flat bicrystal for tests)."""

    expressions: t.Sequence[str]


@dataclasses.dataclass
class GrainGrowthInput:
    """The rendered input and its auxiliary files (name -> text), plus the constants used, for the record."""

    text: str
    files: dict[str, str]
    constants: dict[str, float]
    output_base: str


def _seed_csv(start: VoronoiStart, length_factor: float = M_TO_NM) -> str:
    """Header-less CSV for ``PropertyReadFile`` (voronoi): x y z (model lengths), op, grain id, phi1 Phi phi2 (deg)."""
    seeds = np.asarray(start.seeds, dtype=float) * length_factor
    angles = np.zeros((len(seeds), 3)) if start.euler_angles is None else np.asarray(start.euler_angles, float)
    rows = []
    for k, ((x, y), op, (p1, pp, p2)) in enumerate(zip(seeds.tolist(), start.ops, angles.tolist())):
        rows.append(f'{x!r},{y!r},0.0,{int(op)},{k},{p1!r},{pp!r},{p2!r}')
    return '\n'.join(rows) + '\n'


#: ``time_integration='auto'`` integrates explicitly when ``dt_max`` is at most this many stable explicit steps per
#: order parameter.  An implicit step costs about N^2 (the Jacobian blocks), an explicit one about N; measured
#: (``benchmarks/phase_field.py``, 100 x 100): for N = 8 one implicit NEWTON step cost 12 explicit steps at dt = 0.2 us
#: and 21 at 1 us (more Newton and linear iterations); for N = 2 (the shrinking-circle test, 80 x 80) 12 explicit
#: steps per implicit one already cost twice the implicit run.
EXPLICIT_STEPS_PER_IMPLICIT_PER_OP = 2.5
#: Fraction of the forward-Euler stability limit used as the explicit time step.
EXPLICIT_SAFETY = 0.8


def explicit_stable_dt(
    constants: dict[str, float],
    spacing: tuple[float, float],
    length_factor: float = M_TO_NM,
    time_factor: float = NS_TO_S,
) -> float:
    """Largest stable forward-Euler time step (s, times :data:`EXPLICIT_SAFETY`) of the model on a QUAD4 grid.

    Forward Euler is stable for ``dt < 2 / lambda_max`` of the linearised operator ``M_lumped^-1 (K + R)``.  The
    diffusion part is exact for bilinear elements with a lumped mass matrix: with 1-D Fourier modes ``cos theta`` per
    direction, ``lambda = D [2 (1 - cx) (2 + cy) / (3 hx^2) + 2 (1 - cy) (2 + cx) / (3 hy^2)]``, ``D = L kappa``
    (``4 D / h^2`` on a square grid).  The bulk term adds at most ``6 L mu``: ``d(dF_i)/d eta_i`` is ``2`` in a grain
    and below ``5`` where another grain overlaps, plus the coupling ``4 gamma eta_i eta_j``.

    :param constants: :func:`model_constants` (nm, ns, eV), or the reduced ones (:func:`reduced_model_constants`).
    :param spacing: element sizes ``(hx, hy)`` in m (reduced lengths with ``length_factor`` 1).
    :param length_factor: model length per input length; :param time_factor: input time per model time.
    """
    hx, hy = (h * length_factor for h in spacing)
    c = np.linspace(-1.0, 1.0, 81)
    cx, cy = np.meshgrid(c, c)
    diffusion = np.max(2 * (1 - cx) * (2 + cy) / (3 * hx**2) + 2 * (1 - cy) * (2 + cx) / (3 * hy**2))
    rate = constants['L'] * constants['kappa'] * diffusion + 6 * constants['L'] * constants['mu']  # 1/model time
    return EXPLICIT_SAFETY * 2.0 / rate * time_factor


def _pairwise_bulk(etas: list[str], kernels: dict, materials: dict) -> None:
    """The first formulation (``formulation='pairwise'``): one ``DerivativeParsedMaterial`` per order parameter.

    ``dF_i = eta_i^3 - eta_i + 2 gamma eta_i sum_{j != i} eta_j^2`` depends on all N etas, so each of the N materials
    evaluates its value and N first derivatives at every quadrature point: 9 N bytecode evaluations for N = 8 (72),
    in the residual as well as in the Jacobian.  Kept for the benchmark and as the reference of the answer.
    """
    for k, eta in enumerate(etas):
        others = [e for e in etas if e != eta]
        kernels[f'{eta}_bulk'] = {
            'type': 'MatBodyForce',
            'variable': eta,
            'value': Variable('minus_Lmu'),
            'material_property': f'dF{k}',
            'coupled_variables': others,
        }
        squares = ' + '.join(f'{e}^2' for e in others)
        materials[f'dF{k}'] = {
            'type': 'DerivativeParsedMaterial',
            'property_name': f'dF{k}',
            'coupled_variables': etas,
            'expression': f'{eta}^3 - {eta} + {2 * GAMMA!r} * {eta} * ({squares})',
            'derivative_order': 1,
        }


def _split_bulk(etas: list[str], kernels: dict, materials: dict, derivatives: bool = True) -> None:
    """The default formulation (``formulation='split'``): the same ``dF_i``, rewritten around one shared sum.

    With ``S = sum_j eta_j^2`` the bulk driving force is
    ``L mu dF_i = L mu [eta_i (2 gamma S - 1) - (2 gamma - 1) eta_i^3]``, i.e. two ``MatReaction`` kernels
    (residual ``-rate * eta_i``) per order parameter:

    * ``rate_S = L mu (1 - 2 gamma S)``: ONE ``DerivativeParsedMaterial`` shared by all N kernels (value and N
      derivatives ``-4 gamma L mu eta_j``, all short bytecodes), with the exact off-diagonal Jacobian through
      ``args``;
    * ``rate_i = L mu (2 gamma - 1) eta_i^2``: a material of eta_i alone (value and one derivative).

    That is 3 N + 1 short bytecode evaluations per quadrature point instead of 9 N long ones, for the identical
    residual and Jacobian (the sum is only regrouped), so the answer is the same to the solver tolerance.
    Explicit time integration needs no Jacobian: then plain ``ParsedMaterial`` s (N + 1 evaluations) suffice.
    """
    parsed = 'DerivativeParsedMaterial' if derivatives else 'ParsedMaterial'
    order = {'derivative_order': 1} if derivatives else {}
    squares = ' + '.join(f'{e}^2' for e in etas)
    materials['rate_S'] = {
        'type': parsed,
        'property_name': 'rate_S',
        'coupled_variables': etas,
        'constant_names': 'Lmu',
        'constant_expressions': Variable('Lmu'),
        'expression': f'Lmu * (1 - {2 * GAMMA!r} * ({squares}))',
        **order,
    }
    for k, eta in enumerate(etas):
        others = [e for e in etas if e != eta]
        kernels[f'{eta}_bulk_shared'] = {
            'type': 'MatReaction',
            'variable': eta,
            'reaction_rate': 'rate_S',
            'args': others,
        }
        kernels[f'{eta}_bulk_cubic'] = {'type': 'MatReaction', 'variable': eta, 'reaction_rate': f'rate{k}'}
        materials[f'rate{k}'] = {
            'type': parsed,
            'property_name': f'rate{k}',
            'coupled_variables': [eta],
            'constant_names': 'Lmu',
            'constant_expressions': Variable('Lmu'),
            'expression': f'Lmu * {2 * GAMMA - 1!r} * {eta}^2',
            **order,
        }


def build_grain_growth_input(
    *,
    gb_energy: float,
    mobility_prefactor: float,
    activation_energy: float,
    temperature: float,
    anneal_time: float,
    domain_size: tuple[float, float],
    grid: tuple[int, int],
    interface_width: float,
    n_order_parameters: int,
    start: VoronoiStart | RestartStart | CircleStart | FunctionStart,
    start_time: float = 0.0,
    dt_initial: float | None = None,
    dt_max: float | None = None,
    n_frames: int = 10,
    solver: str = 'newton',
    nl_rel_tol: float = 1e-6,
    nl_abs_tol: float = 1e-9,
    output_base: str = 'phase_field',
    perf_graph: bool = False,
    formulation: str = 'split',
    time_integration: str = 'auto',
    optimal_iterations: int = 5,
    iteration_window: int = 1,
    linear_iteration_ratio: float | None = None,
    adaptivity_levels: int = 0,
) -> GrainGrowthInput:
    """Render the MOOSE input of a 2-D periodic grain-growth run from physical (SI) inputs.

    :param gb_energy: grain-boundary energy sigma, J/m^2.
    :param mobility_prefactor: M0, m^4/(J s); :param activation_energy: Q, eV; :param temperature: T, K.
    :param anneal_time: duration of this run, s (it ends at ``start_time + anneal_time``).
    :param domain_size: ``(Lx, Ly)`` in m; :param grid: ``(nx, ny)`` elements.
    :param interface_width: l in m (Moelans' width, about 4 elements gives < 3 % error in the kinetics).
    :param n_order_parameters: number of eta variables.
    :param start: the initial condition.
    :param start_time: time at which this run starts, s (restarts continue the clock).
    :param dt_initial: first time step, s; default ``0.2 dx^2 / (M sigma)``, the diffusive time of one element.
    :param dt_max: largest time step, s; default ``anneal_time / 20`` (accuracy of the interface motion).
    :param n_frames: number of Exodus frames besides the initial one (grain statistics over time come from them).
    :param solver: ``'newton'`` (exact Jacobian, ILU) or ``'pjfnk'`` (matrix-free, block-diagonal preconditioner).
    :param perf_graph: ask MOOSE for its PerfGraph timing table (for the benchmark).
    :param formulation: ``'split'`` (default: one shared parsed material, see :func:`_split_bulk`) or ``'pairwise'``
        (one parsed material per order parameter, the first formulation, kept for ``benchmarks/phase_field.py``).
        Both solve the same equations.
    :param time_integration: ``'implicit'`` (backward Euler, ``solver``), ``'explicit'`` (forward Euler with a lumped
        mass matrix, ``ActuallyExplicitEuler``, time step capped at :func:`explicit_stable_dt`) or ``'auto'``
        (default): explicit when ``dt_max`` is at most :data:`EXPLICIT_STEPS_PER_IMPLICIT_PER_OP` times N stable
        explicit steps, i.e. when it is the cheaper of the two for the same anneal (``benchmarks/phase_field.py``).
    :param optimal_iterations: ``IterationAdaptiveDT``: an implicit step grows (x 1.5) when it took fewer than
        ``optimal_iterations - iteration_window`` Newton iterations and is cut when it took more than
        ``optimal_iterations + iteration_window``; :param iteration_window: that window.
    :param linear_iteration_ratio: ``IterationAdaptiveDT``'s allowance of linear per Newton iterations in the same
        test (MOOSE's default 25 when None).
    :param adaptivity_levels: 0 (default) for a uniform ``grid``; k > 0 starts from ``grid / 2^k`` elements and
        refines up to k levels where ``sum_i eta_i^2 < 0.95`` (the interfaces), so ``grid`` stays the finest
        resolution (``benchmarks/phase_field.py --scaling``).
    """
    mobility = arrhenius_mobility(mobility_prefactor, activation_energy, temperature)
    constants = model_constants(gb_energy, mobility, interface_width)
    variables = {
        # Physical inputs in SI units (overridable on MOOSE's command line), then the conversion to nm, ns, eV.
        'gb_energy': float(gb_energy),  # J/m^2
        'mobility_prefactor': float(mobility_prefactor),  # m^4/(J s)
        'activation_energy': float(activation_energy),  # eV
        'temperature': float(temperature),  # K
        'interface_width': float(interface_width),  # m
        'kB': BOLTZMANN_EV,  # eV/K
        'sigma': Expression(f'gb_energy * {J_PER_M2_TO_EV_PER_NM2!r}'),  # eV/nm^2
        'M': Expression(
            f'mobility_prefactor * exp(-activation_energy / (kB * temperature)) * {M4_PER_JS_TO_NM4_PER_EVNS!r}'
        ),  # nm^4/(eV ns)
        'width': Expression(f'interface_width * {M_TO_NM!r}'),  # nm
    }
    options = {name: value for name, value in locals().items() if name in _RUN_ARGUMENTS}
    return _render(constants=constants, variables=variables, length_factor=M_TO_NM, time_factor=S_TO_NS, **options)


#: The arguments of a run that both builders pass on to :func:`_render` unchanged.
_RUN_ARGUMENTS = (
    'anneal_time', 'domain_size', 'grid', 'n_order_parameters', 'start', 'start_time', 'dt_initial', 'dt_max',
    'n_frames', 'solver', 'nl_rel_tol', 'nl_abs_tol', 'output_base', 'perf_graph', 'formulation', 'time_integration',
    'optimal_iterations', 'iteration_window', 'linear_iteration_ratio', 'adaptivity_levels',
)  # fmt: skip


def reduced_model_constants(interface_width: float) -> dict[str, float]:
    """Model parameters in reduced units: lengths in the starting grain size ``d0``, time in ``d0^2 / (M sigma)``,
    energy per area in ``sigma`` (so ``sigma = M = 1``); ``interface_width`` in ``d0``.

    Moelans' relations are linear in ``sigma`` and ``M``, so the reduced equations carry no physical constant: one run
    serves every ``(M, sigma, d0)`` and its time is ``tau = t M sigma / d0^2``
    (:class:`aiida_multiscale.physics.grain_growth.ReducedUnits`).
    """
    width = float(interface_width)
    return {'sigma': 1.0, 'M': 1.0, 'width': width, 'mu': 6.0 / width, 'kappa': 0.75 * width, 'L': 4.0 / (3.0 * width)}


def build_reduced_grain_growth_input(
    *,
    anneal_time: float,
    domain_size: tuple[float, float],
    grid: tuple[int, int],
    interface_width: float,
    n_order_parameters: int,
    start: VoronoiStart | RestartStart | CircleStart | FunctionStart,
    **options,
) -> GrainGrowthInput:
    """The same model as :func:`build_grain_growth_input` in reduced units (:func:`reduced_model_constants`).

    Every length (``domain_size``, ``interface_width``, the seeds and radii of ``start``) is in the starting grain
    size ``d0`` and every time (``anneal_time`` and the options ``start_time``, ``dt_initial``, ``dt_max``) in
    ``d0^2 / (M sigma)``.  ``options`` are those of :func:`build_grain_growth_input` (same defaults).  The input holds
    no physical constant, so two anneals that differ only in ``M``, ``sigma`` or ``d0`` render the same file (and
    AiiDA's caching reuses the run).
    """
    unknown = sorted(set(options) - set(_RUN_ARGUMENTS))
    if unknown:
        raise TypeError(f'build_reduced_grain_growth_input: unknown options {unknown}')
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(build_grain_growth_input).parameters.items()
        if name in _RUN_ARGUMENTS and parameter.default is not inspect.Parameter.empty
    }
    constants = reduced_model_constants(interface_width)
    variables = {
        # Reduced units: lengths in d0, times in d0^2/(M sigma), sigma = M = 1.
        'interface_width': float(interface_width),  # d0
        'sigma': 1.0,
        'M': 1.0,
        'width': Expression('interface_width'),
    }
    return _render(
        constants=constants,
        variables=variables,
        length_factor=1.0,
        time_factor=1.0,
        anneal_time=anneal_time,
        domain_size=domain_size,
        grid=grid,
        n_order_parameters=n_order_parameters,
        start=start,
        **{**defaults, **options},
    )


def _render(
    *,
    constants: dict[str, float],
    variables: dict,
    length_factor: float,
    time_factor: float,
    anneal_time: float,
    domain_size: tuple[float, float],
    grid: tuple[int, int],
    n_order_parameters: int,
    start,
    start_time: float,
    dt_initial: float | None,
    dt_max: float | None,
    n_frames: int,
    solver: str,
    nl_rel_tol: float,
    nl_abs_tol: float,
    output_base: str,
    perf_graph: bool,
    formulation: str,
    time_integration: str,
    optimal_iterations: int = 5,
    iteration_window: int = 1,
    linear_iteration_ratio: float | None = None,
    adaptivity_levels: int = 0,
) -> GrainGrowthInput:
    """The HIT input of the model from its constants in model units; lengths and times of the arguments are in the
    caller's units, ``length_factor`` (model length per input length) and ``time_factor`` (model time per input
    time) convert them (nm and ns from SI; 1 and 1 in reduced units)."""
    lx, ly = (float(v) for v in domain_size)
    nx, ny = (int(v) for v in grid)
    n_op = int(n_order_parameters)
    if n_op < 2:
        raise ValueError(f'n_order_parameters must be >= 2, got {n_op}')
    if solver not in ('newton', 'pjfnk'):
        raise ValueError(f"solver must be 'newton' or 'pjfnk', got {solver!r}")
    if time_integration not in ('auto', 'implicit', 'explicit'):
        raise ValueError(f"time_integration must be 'auto', 'implicit' or 'explicit', got {time_integration!r}")
    if formulation not in ('split', 'pairwise'):
        raise ValueError(f"formulation must be 'split' or 'pairwise', got {formulation!r}")
    levels = int(adaptivity_levels)
    if levels < 0 or nx % (1 << levels) or ny % (1 << levels):
        raise ValueError(f'adaptivity_levels={levels}: the grid {nx} x {ny} must be divisible by 2^levels')
    dx_model = lx * length_factor / nx
    start_model = start_time * time_factor
    end_model = (start_time + anneal_time) * time_factor
    if dt_initial is None:
        dt_initial = 0.2 * dx_model**2 / (constants['M'] * constants['sigma']) / time_factor
    if dt_max is None:
        dt_max = anneal_time / 20
    dt_stable = explicit_stable_dt(constants, (lx / nx, ly / ny), length_factor, 1.0 / time_factor)
    if time_integration == 'auto':
        explicit = dt_max <= EXPLICIT_STEPS_PER_IMPLICIT_PER_OP * n_op * dt_stable
    else:
        explicit = time_integration == 'explicit'
    if explicit:
        dt_max = min(dt_max, dt_stable)
    dt_initial = min(dt_initial, dt_max)
    etas = [f'eta{k}' for k in range(n_op)]

    variables = {
        **variables,
        'mu': Expression('6 * sigma / width'),  # eV/nm^3 (reduced: sigma/d0)
        'kappa': Expression('0.75 * sigma * width'),  # eV/nm
        'L': Expression('4 * M / (3 * width)'),  # nm^3/(eV ns)
        'Lkappa': Expression('L * kappa'),
    }
    if formulation == 'pairwise':
        variables['minus_Lmu'] = Expression('-L * mu')
    else:
        variables['Lmu'] = Expression('L * mu')

    blocks: dict[str, t.Any] = {}
    blocks['GlobalParams'] = {'enable_jit': False}  # FParser JIT does not work in this build; bytecode does
    blocks['Mesh'] = {
        'gen': {
            'type': 'GeneratedMeshGenerator',
            'dim': 2,
            'nx': nx >> levels,
            'ny': ny >> levels,
            'xmax': lx * length_factor,
            'ymax': ly * length_factor,
            'elem_type': 'QUAD4',
        }
    }
    blocks['Variables'] = {eta: {'order': 'FIRST', 'family': 'LAGRANGE'} for eta in etas}

    functions: dict[str, t.Any] = {}
    ics: dict[str, t.Any] = {}
    user_objects: dict[str, t.Any] = {}
    files: dict[str, str] = {}
    if isinstance(start, VoronoiStart):
        if len(start.ops) != len(start.seeds) or max(start.ops) >= n_op or min(start.ops) < 0:
            raise ValueError(f'VoronoiStart.ops must give one op in 0..{n_op - 1} per seed')
        files['grains.csv'] = _seed_csv(start, length_factor)
        user_objects['seeds'] = {
            'type': 'PropertyReadFile',
            'prop_file_name': 'grains.csv',
            'read_type': 'voronoi',
            'rve_type': 'periodic',
            'nprop': 8,
            'nvoronoi': len(start.seeds),
        }
        functions['op_map'] = {
            'type': 'PiecewiseConstantFromCSV',
            'read_prop_user_object': 'seeds',
            'read_type': 'voronoi',
            'column_number': 3,
        }
        for k, eta in enumerate(etas):
            functions[f'ic_{eta}'] = {
                'type': 'ParsedFunction',
                'expression': f'if(abs(op - {k}) < 0.5, 1, 0)',
                'symbol_names': 'op',
                'symbol_values': 'op_map',
            }
            ics[eta] = {'type': 'FunctionIC', 'variable': eta, 'function': f'ic_{eta}'}
    elif isinstance(start, CircleStart):
        if n_op < 2:
            raise ValueError('a circle needs two order parameters')
        r = start.radius * length_factor
        cx, cy = lx * length_factor / 2, ly * length_factor / 2
        # Equilibrium profile of Moelans' model for gamma = 1.5: eta = (1 - tanh(2 d / l)) / 2 ... close enough as a
        # start; the interface relaxes within a few steps anyway.
        inside = f'0.5 * (1 - tanh(2 * (sqrt((x - {cx!r})^2 + (y - {cy!r})^2) - {r!r}) / {constants["width"]!r}))'
        functions['ic_eta0'] = {'type': 'ParsedFunction', 'expression': inside}
        functions['ic_eta1'] = {'type': 'ParsedFunction', 'expression': f'1 - {inside}'}
        for k, eta in enumerate(etas):
            if k < 2:
                ics[eta] = {'type': 'FunctionIC', 'variable': eta, 'function': f'ic_{eta}'}
            else:
                ics[eta] = {'type': 'ConstantIC', 'variable': eta, 'value': 0.0}
    elif isinstance(start, FunctionStart):
        if len(start.expressions) != n_op:
            raise ValueError(f'FunctionStart needs {n_op} expressions, one per order parameter')
        for eta, expression in zip(etas, start.expressions):
            functions[f'ic_{eta}'] = {'type': 'ParsedFunction', 'expression': expression}
            ics[eta] = {'type': 'FunctionIC', 'variable': eta, 'function': f'ic_{eta}'}
    elif isinstance(start, RestartStart):
        user_objects['restart'] = {
            'type': 'SolutionUserObject',
            'mesh': start.filename,
            'system_variables': etas,
            'timestep': 'LATEST',
        }
        for eta in etas:
            ics[eta] = {'type': 'SolutionIC', 'variable': eta, 'solution_uo': 'restart', 'from_variable': eta}
    else:
        raise TypeError(f'unknown start {start!r}')
    if functions:
        blocks['Functions'] = functions
    if user_objects:
        blocks['UserObjects'] = user_objects
    blocks['ICs'] = ics
    blocks['BCs'] = {'Periodic': {'all': {'auto_direction': ['x', 'y'], 'variable': etas}}}

    kernels: dict[str, t.Any] = {}
    materials: dict[str, t.Any] = {
        'mobility': {
            'type': 'GenericConstantMaterial',
            'prop_names': 'Lkappa',
            'prop_values': Variable('Lkappa'),
        }
    }
    for eta in etas:
        kernels[f'{eta}_dot'] = {'type': 'TimeDerivative', 'variable': eta}
        kernels[f'{eta}_interface'] = {'type': 'MatDiffusion', 'variable': eta, 'diffusivity': 'Lkappa'}
    if formulation == 'pairwise':
        _pairwise_bulk(etas, kernels, materials)
    else:
        _split_bulk(etas, kernels, materials, derivatives=not explicit)
    blocks['Kernels'] = kernels
    blocks['Materials'] = materials
    if levels:
        # Refine where the grains meet (sum_i eta_i^2 drops below 1 in a diffuse interface), coarsen in the bulk; the
        # initial condition is refined the same way before the first step.
        squares = ' + '.join(f'{e}^2' for e in etas)
        blocks['AuxVariables'] = {'bnds': {'order': 'FIRST', 'family': 'LAGRANGE'}}
        blocks['AuxKernels'] = {
            'bnds': {
                'type': 'ParsedAux',
                'variable': 'bnds',
                'coupled_variables': etas,
                'expression': squares,
                'execute_on': ['initial', 'timestep_end'],
            }
        }
        blocks['Adaptivity'] = {
            'marker': 'interface',
            'initial_marker': 'interface',
            'initial_steps': levels,
            'max_h_level': levels,
            'Markers': {
                'interface': {
                    'type': 'ValueThresholdMarker',
                    'variable': 'bnds',
                    'invert': True,
                    'refine': 0.95,
                    'coarsen': 0.99,
                }
            },
        }

    postprocessors: dict[str, t.Any] = {
        'dt': {'type': 'TimestepSize'},
        'nonlinear_its': {'type': 'NumNonlinearIterations'},
        'linear_its': {'type': 'NumLinearIterations'},
    }
    for eta in etas:
        postprocessors[f'area_{eta}'] = {'type': 'ElementIntegralVariablePostprocessor', 'variable': eta}
    blocks['Postprocessors'] = postprocessors

    stepper = {
        'type': 'IterationAdaptiveDT',
        'dt': dt_initial * time_factor,
        'optimal_iterations': int(optimal_iterations),
        'iteration_window': int(iteration_window),
        'growth_factor': 1.5,
        'cutback_factor': 0.5,
    }
    if linear_iteration_ratio is not None:
        stepper['linear_iteration_ratio'] = float(linear_iteration_ratio)
    if explicit:
        # Forward Euler with a lumped mass matrix: one residual evaluation per step, no Jacobian, no linear solve.
        # IterationAdaptiveDT (no iterations, so it only grows) ramps a restart's small first step back up to dtmax.
        blocks['Executioner'] = {
            'type': 'Transient',
            'start_time': start_model,
            'end_time': end_model,
            'dtmax': dt_max * time_factor,
            'TimeIntegrator': {'type': 'ActuallyExplicitEuler', 'solve_type': 'lumped'},
            'TimeStepper': stepper,
        }
    else:
        if solver == 'newton':
            blocks['Preconditioning'] = {'smp': {'type': 'SMP', 'full': True}}
        else:
            # Matrix-free Newton-Krylov: the Jacobian is only the preconditioner, so its off-diagonal blocks (N^2 - N of
            # them, most of the Jacobian assembly) are skipped.
            blocks['Preconditioning'] = {'smp': {'type': 'SMP', 'full': False}}
        blocks['Executioner'] = {
            'type': 'Transient',
            'solve_type': solver.upper(),
            'petsc_options_iname': ['-pc_type', '-pc_factor_shift_type'],
            'petsc_options_value': ['ilu', 'nonzero'],
            'line_search': 'none',
            'l_max_its': 30,
            'l_tol': 1e-4,
            'nl_max_its': 12,
            'nl_rel_tol': nl_rel_tol,
            'nl_abs_tol': nl_abs_tol,
            'start_time': start_model,
            'end_time': end_model,
            'dtmax': dt_max * time_factor,
            'dtmin': dt_initial * time_factor * 1e-4,
            'TimeStepper': stepper,
        }
    frame_times = [start_model + (end_model - start_model) * (k + 1) / n_frames for k in range(n_frames)]
    outputs: dict[str, t.Any] = {
        'file_base': output_base,
        'csv': {'type': 'CSV'},
        # Frames at evenly spaced times (grain statistics over time), and the start in a file of its own: with
        # sync_only, MOOSE does not write the initial state into the synced file.
        'exodus': {
            'type': 'Exodus',
            'sync_times': frame_times,
            'sync_only': True,
            'execute_on': ['timestep_end', 'final'],
        },
        'initial': {'type': 'Exodus', 'execute_on': 'initial', 'file_base': f'{output_base}_initial'},
    }
    if perf_graph:
        outputs['perf_graph'] = True
    blocks['Outputs'] = outputs
    text = render_hit(blocks, variables)
    return GrainGrowthInput(text=text, files=files, constants=constants, output_base=output_base)

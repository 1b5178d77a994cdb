"""Periodic RVE of a grain map in MOOSE: the effective elastic stiffness of the aggregate by homogenisation.

Why this model, and not the grips of :mod:`~aiida_multiscale.engines.moose.solid_mechanics`:

* Grips on a few-grain sample give an *apparent* modulus, which depends on the boundary conditions and converges to the
  aggregate's only as the sample grows.  Periodic boundary conditions on a periodic grain map give the effective
  stiffness of the infinite aggregate made of copies of the map, which for a given map is the best one can do
  (Hill 1963; Kanit et al., Int. J. Solids Struct. 40, 3647 (2003), show that periodic conditions converge fastest).
* The macroscopic strain is imposed through MOOSE's homogenisation constraint: a scalar variable holds the six
  components of the macroscopic displacement gradient (small kinematics: ``order = SIXTH``), and
  ``ComputeHomogenizedLagrangianStrain`` with ``HomogenizedTotalLagrangianStressDivergence`` enforce each of them either
  as an average strain or as an average stress.  The displacement field is then only the periodic fluctuation.
* The 2-D grain map is extruded into a box of ``layers`` elements along z, periodic in z too: the RVE of a columnar
  aggregate (every grain a prism along z).  That is what a 2-D map describes; its effective stiffness is 3-D and in
  general transversely anisotropic even for random orientations, which is why the cubic projection below is an
  average and the full 6x6 matrix is returned as well.
* One block, per-element Euler angles read by ``PropertyReadFile`` and applied by ``ComputeElasticityTensorCP``, which
  rotates the crystal stiffness by ``g^T`` (crystal -> sample for Bunge angles), as the other FEM models of the
  package.  Lengths are in pixels and stresses in GPa (well-scaled linear system; elastic results do not depend on the
  absolute size).

Load cases: the six unit strains of Voigt notation (11, 22, 33, 23, 13, 12; engineering shear) are applied one per
time step of a single transient run (steps 1..6), each with every other macroscopic strain component held at zero.
The material is linear and has no history, so the steps are six independent solves, and the average stress of step
``k`` divided by the applied strain is column ``k`` of the effective stiffness ``C_eff`` (Voigt, engineering shear).
One MOOSE process instead of six saves the start-up, mesh and assembly set-up five times.
"""

from __future__ import annotations

import dataclasses
import typing as t

import numpy as np

from aiida_multiscale.engines.moose.hit import render_hit
from aiida_multiscale.engines.moose.solid_mechanics import (
    box_mesh_generator,
    cubic_elasticity_tensor_cp,
    element_grain_map,
    euler_angles_csv,
    euler_angles_reader,
    rank_two_aux,
)
from aiida_multiscale.physics.elasticity import born_stability_violations

__all__ = (
    'EULER_FILE',
    'FILE_BASE',
    'LOAD_CASES',
    'MAX_ELEMENTS',
    'STRAIN_POSTPROCESSORS',
    'STRESS_POSTPROCESSORS',
    'STRESS_UNIT',
    'RveModel',
    'axial_moduli',
    'build_rve_input',
    'cubic_projection',
    'effective_stiffness',
    'homogenisation_kernels',
    'homogenisation_materials',
    'homogenisation_parameters',
    'homogenisation_variables',
    'periodic_bcs',
    'rank_two_averages',
    'rve_grid',
    'rve_mesh',
    'rve_mesh_shape',
)

EULER_FILE = 'rve_euler_angles.csv'
FILE_BASE = 'rve'
#: The stress unit of the model: the elastic constants go in, and the average stresses come out, in it.
STRESS_UNIT = 'GPa'
#: Voigt order of the load cases (time step ``k + 1`` applies case ``k``): (i, j) of the tensor component.
LOAD_CASES = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_AXES = 'xyz'
#: The serial LU factorisation of the pip MOOSE (no MUMPS or hypre) handles this many HEX8 elements in reasonable
#: memory and time; larger maps must be sampled more coarsely (``mesh_scale < 1``).
MAX_ELEMENTS = 40_000


def _component(i: int, j: int) -> str:
    return f'{_AXES[i]}{_AXES[j]}'


#: Postprocessor names: the volume average of each stress and strain component.
STRESS_POSTPROCESSORS = tuple(f'stress_{_component(i, j)}' for i, j in LOAD_CASES)
STRAIN_POSTPROCESSORS = tuple(f'strain_{_component(i, j)}' for i, j in LOAD_CASES)


@dataclasses.dataclass
class RveModel:
    """A rendered MOOSE input, the files it needs, and what its results mean."""

    input_text: str
    files: dict[str, bytes]
    element_grains: np.ndarray  # (ny_el, nx_el) grain id of every element column (row j = y)
    applied_strain: float
    layers: int
    stress_unit: str = STRESS_UNIT


def rve_mesh_shape(grid_shape: tuple[int, int], mesh_scale: float, layers: int = 1) -> tuple[int, int, int]:
    """``(nx, ny, nz)`` elements of the RVE of a ``(ny, nx)`` map sampled at ``mesh_scale`` elements per pixel."""
    py, px = grid_shape
    return max(1, round(px * mesh_scale)), max(1, round(py * mesh_scale)), int(layers)


def rve_grid(grain_ids: np.ndarray, mesh_scale: float, layers: int):
    """The RVE's elements and size: ``((nx, ny, nz), (lx, ly, lz), element_grains)``, lengths in element widths.

    The box spans the map (``lx = nx`` element widths along x, ``ly`` its height in the same unit) and ``nz`` cubic
    elements along z; ``element_grains`` is the ``(ny, nx)`` grain of every element column.  The homogenised
    response does not depend on the box's absolute size, but the solver's absolute residual (stress times area) does:
    with lengths in element widths an element contributes the same at any ``mesh_scale``, so one ``nl_abs_tol``
    means the same on a coarse and a fine mesh (in pixels, a coarse crystal-plasticity mesh of 5-pixel elements
    stalled 25 times above it at the onset of yield).

    :raises ValueError: if the mesh exceeds :data:`MAX_ELEMENTS`.
    """
    nx, ny, nz = rve_mesh_shape(grain_ids.shape, mesh_scale, layers)
    if nx * ny * nz > MAX_ELEMENTS:
        raise ValueError(
            f'an RVE of {nx} x {ny} x {nz} = {nx * ny * nz} elements exceeds {MAX_ELEMENTS} for the serial LU solver: '
            'lower mesh_scale (elements per pixel) or layers'
        )
    element_grains = element_grain_map(grain_ids, nx, ny)
    py, px = grain_ids.shape
    lx = float(nx)
    ly = float(py) * nx / px
    lz = float(nz)  # cubic elements
    return (nx, ny, nz), (lx, ly, lz), element_grains


# ------------------------------------------------------------- HIT sections shared with the crystal-plasticity RVE
# The elastic RVE here and the crystal-plasticity RVE of :mod:`~aiida_multiscale.engines.moose.plasticity` are the
# same periodic box under the same homogenisation constraint; they differ in the kinematics, the constraint types and
# targets, the stress material and what they report.  These functions are what they share.
def rve_mesh(shape: tuple[int, int, int], lengths: tuple[float, float, float], subdomains=None) -> dict:
    """The ``Mesh`` block: the box of ``shape`` elements and ``lengths`` pixels; then, if ``subdomains`` (one block
    id per element, in element order) is given, the ``grains`` generator that assigns them; then the ``pin`` node at
    the origin.  Renumbering off: the Euler angles are read by element id."""
    mesh: dict[str, t.Any] = {'box': box_mesh_generator(*shape, *lengths)}
    last = 'box'
    if subdomains is not None:
        mesh['grains'] = {
            'type': 'ElementSubdomainIDGenerator',
            'input': 'box',
            'element_ids': list(range(len(subdomains))),
            'subdomain_ids': list(subdomains),
        }
        last = 'grains'
    # One node fixed: the periodic problem is otherwise defined up to a rigid translation.
    mesh['pin'] = {'type': 'ExtraNodesetGenerator', 'input': last, 'new_boundary': 'pin', 'coord': [0.0, 0.0, 0.0]}
    mesh['allow_renumbering'] = False
    return mesh


def homogenisation_parameters(large_kinematics: bool, constraint_types: list[str], targets: list[str]) -> dict:
    """The ``GlobalParams`` of the homogenisation constraint: the macroscopic gradient is the scalar ``hvar``.

    :param constraint_types: nine entries, column-major (11 21 31 12 22 32 13 23 33), each strain, stress or none.
    :param targets: one function name per constrained entry.
    """
    return {
        'displacements': ['disp_x', 'disp_y', 'disp_z'],
        'large_kinematics': large_kinematics,
        'macro_gradient': 'hvar',
        'macro_var': 'hvar',
        'constraint_types': constraint_types,
        'targets': targets,
    }


def homogenisation_variables(order: str) -> dict:
    """The ``Variables``: the periodic displacement fluctuation and ``hvar``, of ``order`` SIXTH (small kinematics,
    the upper triangle) or NINTH (large kinematics, every entry of F)."""
    return {'disp_x': {}, 'disp_y': {}, 'disp_z': {}, 'hvar': {'family': 'SCALAR', 'order': order}}


def homogenisation_kernels() -> dict:
    """The ``Kernels``: total-Lagrangian stress divergence with the homogenisation constraint, one per axis."""
    return {
        f'stress_{axis}': {
            'type': 'HomogenizedTotalLagrangianStressDivergence',
            'variable': f'disp_{axis}',
            'component': index,
        }
        for index, axis in enumerate(_AXES)
    }


def periodic_bcs() -> dict:
    """The ``BCs``: every displacement periodic on all faces, and zero at the ``pin`` node."""
    return {
        'Periodic': {axis: {'variable': f'disp_{axis}', 'auto_direction': list(_AXES)} for axis in _AXES},
        **{
            f'pin_{axis}': {'type': 'DirichletBC', 'variable': f'disp_{axis}', 'boundary': 'pin', 'value': 0.0}
            for axis in _AXES
        },
    }


def homogenisation_materials(c11: float, c12: float, c44: float) -> dict:
    """The ``Materials`` both RVEs start with: the rotated cubic stiffness and the Lagrangian strains with the
    homogenisation gradient.  The caller adds its ``stress``."""
    return {
        'elasticity': cubic_elasticity_tensor_cp(c11, c12, c44),
        'strain': {'type': 'ComputeLagrangianStrain', 'homogenization_gradient_names': 'homogenization_gradient'},
        'macro_strain': {'type': 'ComputeHomogenizedLagrangianStrain'},
    }


def rank_two_averages(components: t.Iterable[tuple[str, str, int, int]]) -> tuple[dict, dict, dict]:
    """``(AuxVariables, AuxKernels, Postprocessors)`` of the volume average of tensor components.

    :param components: ``(name, tensor, i, j)``: component ``(i, j)`` of the material tensor ``tensor`` becomes the
        elemental variable and the ``ElementAverageValue`` postprocessor ``name`` (equal elements: the element average
        is the volume average).
    """
    aux_variables, aux_kernels, postprocessors = {}, {}, {}
    for name, tensor, i, j in components:
        aux_variables[name] = {'order': 'CONSTANT', 'family': 'MONOMIAL'}
        aux_kernels[name] = rank_two_aux(name, tensor, i, j)
        postprocessors[name] = {'type': 'ElementAverageValue', 'variable': name}
    return aux_variables, aux_kernels, postprocessors


def _check_arguments(grain_ids, euler, c11, c12, c44, applied_strain, mesh_scale, layers) -> None:
    """Refuse what would give a wrong or unsolvable model, each message naming the problem and the fix."""
    errors = born_stability_violations(c11, c12, c44)
    if errors:
        raise ValueError('elastic constants are not Born-stable: ' + '; '.join(errors))
    if grain_ids.ndim != 2 or min(grain_ids.shape) < 1:
        raise ValueError(f'grain_ids must be a 2-D (ny, nx) map, got shape {grain_ids.shape}')
    if grain_ids.min() < 0 or grain_ids.max() >= len(euler):
        raise ValueError(
            f'grain ids run {grain_ids.min()}..{grain_ids.max()} but there are {len(euler)} rows of Euler angles: '
            'give one (phi1, Phi, phi2) row per grain id'
        )
    if not np.all(np.isfinite(euler)):
        raise ValueError('euler_angles must be finite (Bunge, degrees)')
    if not 0 < applied_strain <= 0.01:
        raise ValueError(f'applied_strain must be in (0, 0.01] (small-strain elasticity), got {applied_strain}')
    if not 0 < mesh_scale <= 4:
        raise ValueError(f'mesh_scale (elements per pixel) must be in (0, 4], got {mesh_scale}')
    if isinstance(layers, bool) or not isinstance(layers, (int, np.integer)) or not 1 <= layers <= 8:
        raise ValueError(f'layers (elements along the extrusion z) must be an integer in [1, 8], got {layers!r}')


def build_rve_input(
    grain_ids,
    euler_angles,
    c11: float,
    c12: float,
    c44: float,
    *,
    applied_strain: float = 1e-3,
    mesh_scale: float = 1.0,
    layers: int = 1,
) -> RveModel:
    """Render the periodic-RVE input: six strain load cases, one per time step, on the extruded grain map.

    :param grain_ids: ``(ny, nx)`` grain id per pixel of a periodic map (``MicrostructureData.grain_ids``).
    :param euler_angles: ``(n_grains, 3)`` Bunge angles in degrees, crystal -> sample.
    :param c11, c12, c44: cubic elastic constants in GPa (:data:`STRESS_UNIT`).
    :param applied_strain: size of each unit load case (engineering strain; small, the model is linear).
    :param mesh_scale: elements per pixel along x and y (the grain of an element is the pixel under its centre).
    :param layers: elements along the extrusion axis z (1 is exact for a columnar aggregate: the periodic fluctuation
        does not depend on z when nothing does).
    :raises ValueError: for unstable constants, inconsistent maps or a mesh too large for the serial solver.
    """
    grain_ids = np.asarray(grain_ids)
    euler = np.asarray(euler_angles, dtype=float).reshape(-1, 3)
    _check_arguments(grain_ids, euler, c11, c12, c44, applied_strain, mesh_scale, layers)
    shape, lengths, element_grains = rve_grid(grain_ids, mesh_scale, layers)
    nz = shape[2]
    csv = euler_angles_csv(euler, element_grains, nz)

    # Constraint list: 9 entries, column-major (11 21 31 12 22 32 13 23 33); small kinematics uses the upper triangle,
    # whose six entries take one target function each, in the order 11 12 22 13 23 33.
    upper = ((0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2))
    constraint_types = ['strain' if i <= j else 'none' for j in range(3) for i in range(3)]
    times = list(range(len(LOAD_CASES) + 1))
    functions = {}
    for i, j in upper:
        case = LOAD_CASES.index((i, j))
        # Tensor strain targets: a shear case applies the engineering shear gamma = applied_strain, i.e. eps_ij = /2.
        size = applied_strain if i == j else applied_strain / 2
        functions[f'macro_{_component(i, j)}'] = {
            'type': 'PiecewiseLinear',
            'x': times,
            'y': [size if step == case + 1 else 0.0 for step in times],
        }
    targets = [f'macro_{_component(i, j)}' for i, j in upper]

    aux_variables, aux_kernels, postprocessors = rank_two_averages(
        (f'{prefix}_{_component(i, j)}', tensor, i, j)
        for prefix, tensor in (('stress', 'pk1_stress'), ('strain', 'mechanical_strain'))
        for i, j in LOAD_CASES
    )

    blocks: dict[str, t.Any] = {
        'GlobalParams': homogenisation_parameters(False, constraint_types, targets),
        'Mesh': rve_mesh(shape, lengths),
        'Variables': homogenisation_variables('SIXTH'),
        'Kernels': homogenisation_kernels(),
        'Functions': functions,
        'BCs': periodic_bcs(),
        'AuxVariables': aux_variables,
        'AuxKernels': aux_kernels,
        'UserObjects': euler_angles_reader(EULER_FILE),
        'Materials': {
            **homogenisation_materials(c11, c12, c44),
            'stress': {'type': 'ComputeLagrangianLinearElasticStress'},
        },
        'Postprocessors': postprocessors,
        'Executioner': {
            'type': 'Transient',
            'solve_type': 'NEWTON',
            # Each step is linear: one Newton step with an exact LU solve.  No line search: the residual mixes
            # force (fluctuation) and strain (constraint) units, which a backtracking search handles badly.
            'line_search': 'none',
            'petsc_options_iname': ['-pc_type', '-pc_factor_mat_ordering_type'],
            'petsc_options_value': ['lu', 'nd'],
            'nl_rel_tol': 1e-10,
            'nl_abs_tol': 1e-12,
            'nl_max_its': 5,
            'start_time': 0.0,
            'end_time': float(len(LOAD_CASES)),
            'dt': 1.0,
        },
        'Outputs': {'file_base': FILE_BASE, 'csv': True, 'exodus': False, 'perf_graph': False},
    }
    return RveModel(render_hit(blocks), {EULER_FILE: csv.encode()}, element_grains, applied_strain, nz)


# ------------------------------------------------------------------------------------------------- post-processing
def effective_stiffness(series: t.Mapping[str, t.Sequence[float]], applied_strain: float) -> np.ndarray:
    """``C_eff`` (6x6 Voigt, engineering shear, in the model's stress unit) from the postprocessor time series.

    :param series: the CSV columns (``time`` and the average ``stress_*`` of :func:`build_rve_input`).
    :param applied_strain: the size of each load case.
    :raises ValueError: if a load case is missing (the run stopped early) or the applied strains are not what the
        input asked for (a constraint that did not act).
    """
    time = np.asarray(series['time'], dtype=float)
    stiffness = np.zeros((6, 6))
    for case in range(len(LOAD_CASES)):
        rows = np.flatnonzero(np.isclose(time, case + 1.0))
        if rows.size == 0:
            raise ValueError(f'no result at time {case + 1} (load case {case + 1} of 6): the MOOSE run is incomplete')
        row = rows[-1]
        strain = np.array([series[name][row] for name in STRAIN_POSTPROCESSORS], dtype=float)
        strain[3:] *= 2.0  # tensor -> engineering shear
        expected = np.zeros(6)
        expected[case] = applied_strain
        if not np.allclose(strain, expected, rtol=1e-6, atol=1e-9 * applied_strain):
            raise ValueError(
                f'load case {case + 1}: the average strain {strain.tolist()} is not the applied {expected.tolist()}: '
                'the homogenisation constraint did not act'
            )
        stiffness[:, case] = [series[name][row] / applied_strain for name in STRESS_POSTPROCESSORS]
    return stiffness


def cubic_projection(stiffness: np.ndarray) -> dict[str, float]:
    """The cubic constants nearest ``stiffness`` in its own axes: the mean of each set of cubic-equivalent entries.

    ``c11 = <C11, C22, C33>``, ``c12 = <C12, C13, C23>``, ``c44 = <C44, C55, C66>``.  For a random aggregate they are
    the sample-axes constants of a (nearly) isotropic body; ``cubic_deviation`` (the largest difference of an entry
    from its set's mean, over c11) says how far from cubic the aggregate is.  A columnar map is transversely
    anisotropic by construction, so it is never exactly zero there, and off-diagonal couplings (C14, ...) are not
    represented: they are in the full matrix.
    """
    c = np.asarray(stiffness, dtype=float)
    sets = {
        'c11': [c[0, 0], c[1, 1], c[2, 2]],
        'c12': [c[0, 1], c[0, 2], c[1, 2], c[1, 0], c[2, 0], c[2, 1]],
        'c44': [c[3, 3], c[4, 4], c[5, 5]],
    }
    result = {name: float(np.mean(values)) for name, values in sets.items()}
    off = [c[i, j] for i in range(6) for j in range(6) if (i < 3) != (j < 3) or (i >= 3 and j >= 3 and i != j)]
    deviations = [abs(v - result[name]) for name, values in sets.items() for v in values] + [abs(v) for v in off]
    result['cubic_deviation'] = float(max(deviations) / result['c11'])
    return result


def axial_moduli(stiffness: np.ndarray, axis: int = 0, lateral: int | None = None) -> tuple[float, float]:
    """Young's modulus along ``axis`` and Poisson's ratio ``-eps_lateral / eps_axis`` under uniaxial stress.

    From the compliance ``S = C^-1``: ``E = 1 / S_aa`` and ``nu = -S_la / S_aa`` (the lateral axis defaults to the next
    one, y for loading along x).
    """
    if axis not in (0, 1, 2):
        raise ValueError(f'axis must be 0, 1 or 2 (x, y, z), got {axis!r}')
    lateral = (axis + 1) % 3 if lateral is None else lateral
    if lateral not in (0, 1, 2) or lateral == axis:
        raise ValueError(f'lateral must be an axis 0, 1 or 2 other than {axis}, got {lateral!r}')
    compliance = np.linalg.inv(np.asarray(stiffness, dtype=float))
    return float(1.0 / compliance[axis, axis]), float(-compliance[lateral, axis] / compliance[axis, axis])

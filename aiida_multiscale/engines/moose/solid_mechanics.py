"""Polycrystal linear elasticity in MOOSE: a thin 3-D slab of the grain map, cubic Cij rotated per element, tension.

Why these choices:

* A thin 3-D slab (one element through the thickness, free faces) rather than 2-D plane strain, which overestimates E
  (the out-of-plane constraint stiffens it, up to or beyond the Voigt bound).
* One block, per-element Euler angles read by ``PropertyReadFile`` (``read_type = element``, mesh renumbering off) and
  applied by ``ComputeElasticityTensorCP``: it scales to thousands of grains, and it applies ``g^T``, the
  crystal -> sample map of Bunge angles, so angles from MicrostructureData go in unchanged.
* Uniaxial tension by prescribed displacement between two grips (``u_x = 0`` at x = 0, ``u_x = eps L`` at x = L), with
  only the rigid-body modes pinned (two nodes): a homogeneous anisotropic crystal can then shear freely, so the
  solution is exactly uniaxial stress and E equals the directional modulus.  Rollers on three faces would not allow
  that and overestimate E of a rotated crystal.
* Lengths are in pixels (elastic results do not depend on the absolute size) and stresses in GPa, which keeps the
  linear system well scaled; PETSc's own serial LU solves it (no hypre or MUMPS in the pip build).

Averages: ``<sigma_xx>`` over the volume equals the grip force over the section, and ``<eps_xx>`` the applied strain,
so ``E_eff = <sigma_xx> / <eps_xx>`` and ``nu_eff = -<eps_yy> / <eps_xx>``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from aiida_multiscale.engines.moose.hit import render_hit
from aiida_multiscale.physics.elasticity import born_stability_violations

__all__ = (
    'FILE_BASE',
    'STRESS_UNIT',
    'ElasticityModel',
    'box_mesh_generator',
    'build_elasticity_input',
    'cubic_elasticity_tensor_cp',
    'element_grain_map',
    'euler_angles_csv',
    'euler_angles_reader',
    'rank_two_aux',
)

EULER_FILE = 'euler_angles.csv'
FILE_BASE = 'elasticity'
#: The stress unit of the model: the elastic constants go in, and the stresses come out, in it.
STRESS_UNIT = 'GPa'


@dataclasses.dataclass
class ElasticityModel:
    """A rendered MOOSE input with the files it needs and what the results mean."""

    input_text: str
    files: dict[str, bytes]
    element_grains: np.ndarray  # (ny_el, nx_el) grain id of every element (row j = y)
    applied_strain: float
    stress_unit: str = STRESS_UNIT


def element_grain_map(grain_ids: np.ndarray, nx: int, ny: int) -> np.ndarray:
    """Grain of each element of an ``nx`` x ``ny`` mesh over the map: the pixel under the element centre."""
    grain_ids = np.asarray(grain_ids)
    py, px = grain_ids.shape
    cols = np.minimum(((np.arange(nx) + 0.5) * px / nx).astype(int), px - 1)
    rows = np.minimum(((np.arange(ny) + 0.5) * py / ny).astype(int), py - 1)
    return grain_ids[np.ix_(rows, cols)]


# ------------------------------------------------------------------------- HIT sections shared by the grain-map models
# The slab here and the periodic RVEs of :mod:`~aiida_multiscale.engines.moose.rve` and
# :mod:`~aiida_multiscale.engines.moose.plasticity` mesh the map the same way and rotate the crystal the same way, so
# they take these sections from one place: a change to the element numbering or the orientation convention then
# reaches every model at once.
def box_mesh_generator(nx: int, ny: int, nz: int, lx: float, ly: float, lz: float) -> dict:
    """The ``GeneratedMeshGenerator`` of an ``nx`` x ``ny`` x ``nz`` HEX8 box from the origin to ``(lx, ly, lz)``.

    libMesh numbers its elements x fastest, then y, then z: the row-major ``(ny, nx)`` order of the grain map, once
    per layer, which is the order :func:`euler_angles_csv` writes the angles in.
    """
    return {
        'type': 'GeneratedMeshGenerator',
        'dim': 3,
        'nx': nx,
        'ny': ny,
        'nz': nz,
        'xmax': lx,
        'ymax': ly,
        'zmax': lz,
        'elem_type': 'HEX8',
    }


def euler_angles_csv(euler: np.ndarray, element_grains: np.ndarray, layers: int = 1, digits: int = 12) -> str:
    """The ``PropertyReadFile`` CSV: one ``phi1,Phi,phi2`` row (degrees) per element, in libMesh's element order.

    :param euler: ``(n_grains, 3)`` Bunge angles in degrees.
    :param element_grains: ``(ny_el, nx_el)`` grain of every element column (:func:`element_grain_map`).
    :param layers: elements along z: the map is repeated once per layer.
    :param digits: significant digits of each angle.
    """
    per_element = euler[np.tile(np.asarray(element_grains).ravel(), layers)]
    return '\n'.join(f'{a:.{digits}g},{b:.{digits}g},{c:.{digits}g}' for a, b, c in per_element) + '\n'


def euler_angles_reader(file_name: str) -> dict:
    """The ``UserObjects`` section: ``euler_angles`` reads three angles per element from ``file_name``.

    ``read_type = element`` numbers the rows by element id, which holds only with mesh renumbering off
    (``allow_renumbering = false`` in the Mesh block).
    """
    return {
        'euler_angles': {
            'type': 'PropertyReadFile',
            'prop_file_name': file_name,
            'read_type': 'element',
            'nprop': 3,
        },
    }


def cubic_elasticity_tensor_cp(c11: float, c12: float, c44: float) -> dict:
    """``ComputeElasticityTensorCP`` of a cubic crystal, rotated per element by the ``euler_angles`` user object.

    It applies ``g^T`` (crystal -> sample for Bunge angles), so angles from MicrostructureData go in unchanged.
    """
    return {
        'type': 'ComputeElasticityTensorCP',
        # symmetric9: C11 C12 C13 C22 C23 C33 C44 C55 C66
        'C_ijkl': [c11, c12, c12, c11, c12, c11, c44, c44, c44],
        'fill_method': 'symmetric9',
        'read_prop_user_object': 'euler_angles',
    }


def rank_two_aux(variable: str, tensor: str, i: int, j: int) -> dict:
    """The ``RankTwoAux`` kernel that writes component ``(i, j)`` of the material tensor ``tensor`` to ``variable``."""
    return {
        'type': 'RankTwoAux',
        'variable': variable,
        'rank_two_tensor': tensor,
        'index_i': i,
        'index_j': j,
        'execute_on': 'timestep_end',
    }


def build_elasticity_input(
    grain_ids,
    euler_angles,
    c11: float,
    c12: float,
    c44: float,
    *,
    applied_strain: float = 1e-3,
    mesh_scale: float = 1.0,
    thickness: float = 1.0,
) -> ElasticityModel:
    """Render the uniaxial-tension input for a grain map.

    :param grain_ids: ``(ny, nx)`` grain id per pixel (MicrostructureData.grain_ids).
    :param euler_angles: ``(n_grains, 3)`` Bunge angles in degrees, crystal -> sample.
    :param c11, c12, c44: cubic elastic constants in GPa.
    :param applied_strain: engineering strain along x imposed by the grips (small: linear elasticity).
    :param mesh_scale: elements per pixel along x and y (e.g. 0.5 coarsens a 100x100 map to 50x50 elements).
    :param thickness: slab thickness in pixels (one element through it).
    """
    errors = born_stability_violations(c11, c12, c44)
    if errors:
        raise ValueError('elastic constants are not Born-stable: ' + '; '.join(errors))
    if not 0 < applied_strain <= 0.05:
        raise ValueError(f'applied_strain must be in (0, 0.05] (small-strain elasticity), got {applied_strain}')
    if not 0 < thickness <= 10:
        raise ValueError(f'thickness must be in (0, 10] pixels (a thin slab), got {thickness}')
    grain_ids = np.asarray(grain_ids)
    euler = np.asarray(euler_angles, dtype=float).reshape(-1, 3)
    py, px = grain_ids.shape
    nx, ny = max(1, round(px * mesh_scale)), max(1, round(py * mesh_scale))
    if nx * ny > 250_000:
        raise ValueError(f'mesh of {nx} x {ny} elements is too large for this serial solver: lower mesh_scale')
    element_grains = element_grain_map(grain_ids, nx, ny)
    csv = euler_angles_csv(euler, element_grains, digits=10)
    lx, ly, lz = float(px), float(py), float(thickness)

    aux_variables = {
        name: {'order': 'CONSTANT', 'family': 'MONOMIAL'}
        for name in ('stress_xx', 'stress_yy', 'stress_xy', 'strain_xx', 'strain_yy', 'strain_zz', 'vonmises')
    }
    aux_kernels = {
        'vonmises': {
            'type': 'RankTwoScalarAux',
            'variable': 'vonmises',
            'rank_two_tensor': 'stress',
            'scalar_type': 'VonMisesStress',
            'execute_on': 'timestep_end',
        },
    }
    for name, tensor, (i, j) in (
        ('stress_xx', 'stress', (0, 0)),
        ('stress_yy', 'stress', (1, 1)),
        ('stress_xy', 'stress', (0, 1)),
        ('strain_xx', 'total_strain', (0, 0)),
        ('strain_yy', 'total_strain', (1, 1)),
        ('strain_zz', 'total_strain', (2, 2)),
    ):
        aux_kernels[name] = rank_two_aux(name, tensor, i, j)
    postprocessors = {
        f'average_{name}': {'type': 'ElementAverageValue', 'variable': name}
        for name in ('stress_xx', 'stress_yy', 'strain_xx', 'strain_yy', 'strain_zz')
    }
    postprocessors['max_vonmises'] = {'type': 'ElementExtremeValue', 'variable': 'vonmises', 'value_type': 'max'}
    postprocessors['average_vonmises'] = {'type': 'ElementAverageValue', 'variable': 'vonmises'}

    blocks = {
        'GlobalParams': {'displacements': ['disp_x', 'disp_y', 'disp_z']},
        'Mesh': {
            'box': box_mesh_generator(nx, ny, 1, lx, ly, lz),
            'pin_origin': {
                'type': 'ExtraNodesetGenerator',
                'input': 'box',
                'new_boundary': 'pin_origin',
                'coord': [0.0, 0.0, 0.0],
            },
            'pin_top': {
                'type': 'ExtraNodesetGenerator',
                'input': 'pin_origin',
                'new_boundary': 'pin_top',
                'coord': [0.0, 0.0, lz],
            },
            'allow_renumbering': False,
        },
        'Variables': {'disp_x': {}, 'disp_y': {}, 'disp_z': {}},
        'Kernels': {
            f'stress_{axis}': {'type': 'StressDivergenceTensors', 'variable': f'disp_{axis}', 'component': index}
            for index, axis in enumerate('xyz')
        },
        'AuxVariables': aux_variables,
        'AuxKernels': aux_kernels,
        'UserObjects': euler_angles_reader(EULER_FILE),
        'Materials': {
            'elasticity': cubic_elasticity_tensor_cp(c11, c12, c44),
            'strain': {'type': 'ComputeSmallStrain'},
            'stress': {'type': 'ComputeLinearElasticStress'},
        },
        'BCs': {
            'grip_left': {'type': 'DirichletBC', 'variable': 'disp_x', 'boundary': 'left', 'value': 0.0},
            'grip_right': {
                'type': 'DirichletBC',
                'variable': 'disp_x',
                'boundary': 'right',
                'value': applied_strain * lx,
            },
            'pin_y': {'type': 'DirichletBC', 'variable': 'disp_y', 'boundary': ['pin_origin', 'pin_top'], 'value': 0.0},
            'pin_z': {'type': 'DirichletBC', 'variable': 'disp_z', 'boundary': 'pin_origin', 'value': 0.0},
        },
        'Postprocessors': postprocessors,
        'Executioner': {
            'type': 'Steady',
            'solve_type': 'NEWTON',
            'petsc_options_iname': ['-pc_type', '-pc_factor_mat_ordering_type'],
            'petsc_options_value': ['lu', 'nd'],
            'nl_rel_tol': 1e-10,
            'nl_abs_tol': 1e-12,
            'l_tol': 1e-10,
        },
        'Outputs': {'file_base': FILE_BASE, 'csv': True, 'exodus': True},
    }
    return ElasticityModel(render_hit(blocks), {EULER_FILE: csv.encode()}, element_grains, applied_strain)

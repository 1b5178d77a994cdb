"""Independent references shared by the RVE tests (elastic and crystal plasticity), written apart from the package.

Periodic Voronoi maps by brute force, random orientations, and the cubic stiffness rotated into the sample with
scipy's ``Rotation`` (not the package's Bunge matrices) and a rank-4 tensor rotation, so that a wrong convention in
the package shows up as a disagreement rather than cancelling out.  Imported by ``test_rve.py`` and
``test_plasticity_workchain.py`` (this folder is on ``sys.path``: it holds the rootdir ``conftest.py``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from aiida_multiscale.data.handoff import HandoffData

#: Cu at room temperature, GPa: Simmons and Wang, Single Crystal Elastic Constants and Calculated Aggregate
#: Properties (MIT Press, 1971).  Zener ratio 2 C44 / (C11 - C12) = 3.2: strongly anisotropic.
CU = (168.4, 121.4, 75.4)
#: Voigt order of the index pairs: 11 22 33 23 13 12.
PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def voronoi_map(n_grains: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    """A periodic Voronoi map by brute force (minimum-image distance to random seeds), relabelled 0..n-1."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    seeds = rng.uniform(0, 1, (n_grains, 2)) * [nx, ny]
    y, x = np.mgrid[0:ny, 0:nx] + 0.5
    d = np.abs(x[..., None] - seeds[:, 0])
    d = np.minimum(d, nx - d) ** 2
    e = np.abs(y[..., None] - seeds[:, 1])
    d = d + np.minimum(e, ny - e) ** 2
    labels = np.argmin(d, axis=-1)
    return np.unique(labels, return_inverse=True)[1].reshape(shape)


def random_euler(count: int, seed: int) -> np.ndarray:
    """``count`` uniformly random orientations as Bunge angles in degrees (cos(Phi) uniform in [-1, 1])."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [rng.uniform(0, 360, count), np.degrees(np.arccos(rng.uniform(-1, 1, count))), rng.uniform(0, 360, count)]
    )


def crystal_to_sample(euler_deg) -> np.ndarray:
    """Bunge (phi1, Phi, phi2): the crystal -> sample rotation is the intrinsic z-x'-z'' rotation by those angles."""
    return Rotation.from_euler('ZXZ', euler_deg, degrees=True).as_matrix()


def cubic_tensor(c11, c12, c44) -> np.ndarray:
    """The rank-4 stiffness of a cubic crystal in its own axes."""
    delta = np.eye(3)
    tensor = c12 * np.einsum('ij,kl->ijkl', delta, delta) + c44 * (
        np.einsum('ik,jl->ijkl', delta, delta) + np.einsum('il,jk->ijkl', delta, delta)
    )
    for i in range(3):
        tensor[i, i, i, i] = c11
    return tensor


def voigt_matrix(tensor) -> np.ndarray:
    """The 6x6 Voigt matrix (engineering shear) of a rank-4 stiffness."""
    return np.array([[tensor[i, j, k, m] for k, m in PAIRS] for i, j in PAIRS])


def sample_stiffness(constants, euler_deg) -> np.ndarray:
    """The cubic stiffness ``(c11, c12, c44)`` rotated into the sample (Voigt 6x6, engineering shear)."""
    r = crystal_to_sample(euler_deg)
    return voigt_matrix(np.einsum('ia,jb,kc,ld,abcd->ijkl', r, r, r, r, cubic_tensor(*constants)))


def voigt_reuss(constants, euler, weights) -> tuple[np.ndarray, np.ndarray]:
    """Voigt stiffness (mean C) and Reuss compliance (mean S) of the grains, engineering-shear Voigt matrices."""
    stiffnesses = [sample_stiffness(constants, angles) for angles in euler]
    voigt = sum(w * c for w, c in zip(weights, stiffnesses))
    reuss = sum(w * np.linalg.inv(c) for w, c in zip(weights, stiffnesses))
    return voigt, reuss


def cubic_elastic(constants) -> HandoffData:
    """The ``elastic`` input of the RVE chains: ``(c11, c12, c44)`` in GPa (not stored)."""
    return HandoffData(
        {name: {'value': v, 'unit': 'GPa', 'note': 'test input'} for name, v in zip(('c11', 'c12', 'c44'), constants)}
    )

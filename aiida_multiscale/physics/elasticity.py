"""Elasticity of cubic crystals and their aggregates, in plain numpy: rotation, directional modulus, Voigt/Reuss/Hill.

These are the independent references of the FEM rung: the Voigt and Reuss averages of the stiffness rotated into each
grain bound the effective stiffness of the polycrystal from above and below (Hill 1952), whatever the grain shapes.
They are computed here without MOOSE, from the same orientations and area fractions, so that a wrong rotation
convention or a wrong boundary condition in the FEM shows up as E_eff outside [E_Reuss, E_Voigt].

Conventions: stiffness in Voigt notation (11, 22, 33, 23, 13, 12) with engineering shear strains; Bunge Euler angles
(phi1, Phi, phi2) in degrees; ``g = R_z(phi2) R_x(Phi) R_z(phi1)`` maps sample to crystal coordinates, so a crystal
tensor is carried into the sample frame by ``g^T`` (what MOOSE's ``ComputeElasticityTensorCP`` applies).

Why not pymatgen's ``ElasticTensor``: its Voigt/Reuss/Hill moduli are those of a random (isotropic) aggregate, while
the FEM check needs the bounds of one finite, area-weighted set of orientations along the loading axis.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = (
    'bunge_matrix',
    'born_stability_violations',
    'bulk_modulus_from_cij',
    'cubic_elastic_constants',
    'cubic_stiffness',
    'directional_modulus',
    'e100',
    'isotropic_cubic_constants',
    'moduli_from_compliance',
    'rotate_stiffness',
    'stress_strain_slope',
    'voigt_reuss_hill',
)

_VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def cubic_stiffness(c11: float, c12: float, c44: float) -> np.ndarray:
    """6x6 Voigt stiffness of a cubic crystal in its cubic axes."""
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    np.fill_diagonal(c[:3, :3], c11)
    c[3, 3] = c[4, 4] = c[5, 5] = c44
    return c


def born_stability_violations(c11: float, c12: float, c44: float) -> list[str]:
    """The violated Born conditions of a cubic crystal (empty if mechanically stable), each naming the constants.

    ``C44 > 0``, ``C11 - C12 > 0`` and ``C11 + 2 C12 > 0`` are the eigenvalues of the cubic stiffness matrix being
    positive (Born and Huang 1954; Mouhat and Coudert, Phys. Rev. B 90, 224104 (2014)).  The one check of the package:
    the DFT and MD rungs, the bridges and the FEM builder all call it.
    """
    errors = []
    if not c44 > 0:
        errors.append(f'C44 = {c44:g} must be > 0 (shear unstable)')
    if not c11 - c12 > 0:
        errors.append(
            f'C11 - C12 = {c11 - c12:g} must be > 0 (C11 = {c11:g}, C12 = {c12:g}; tetragonal shear unstable)'
        )
    if not c11 + 2 * c12 > 0:
        errors.append(
            f'C11 + 2 C12 = {c11 + 2 * c12:g} must be > 0 (C11 = {c11:g}, C12 = {c12:g}; '
            'unstable under hydrostatic strain)'
        )
    return errors


def bulk_modulus_from_cij(c11: float, c12: float) -> float:
    """Bulk modulus of a cubic crystal, B = (C11 + 2 C12) / 3."""
    return (c11 + 2 * c12) / 3


def stress_strain_slope(strains, stresses) -> tuple[float, float | None, float]:
    """The one stress-strain fitter: slope at zero strain, its standard uncertainty, and the intercept.

    Each independent datum must enter once: average symmetry-equivalent components (sigma_yy and sigma_zz under
    e_xx) before the fit, do not pass both.

    With four or more distinct strains a cubic is fitted and its linear coefficient taken: for strains symmetric about
    zero that removes the leading non-linearity (C111-type terms, several per cent of the stress at 1 % strain),
    which a linear fit or a central difference keeps.  With fewer, a straight line.

    The std has one definition for every caller (DFT, where SCF noise dominates, and MD, where the data are smooth and
    truncation dominates): the fit's own standard error from its residuals (zero spare points: none) combined in
    quadrature with the truncation estimate |slope(cubic) - slope(linear)| where a cubic was fitted.  ``None`` when
    neither exists (two points, or three on a line with no spare point).

    :param strains: the strain of each point (dimensionless).
    :param stresses: the matching stress component (any unit; the slope has the same unit).
    """
    x = np.asarray(strains, dtype=float)
    y = np.asarray(stresses, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f'need matching 1-d strains and stresses, got {x.shape} and {y.shape}')
    distinct = len(np.unique(x))
    if distinct < 2:
        raise ValueError('need at least two distinct strains to fit a slope')
    degree = 3 if distinct >= 4 else 1
    design = np.vander(x, degree + 1, increasing=True)
    coeffs, *_ = np.linalg.lstsq(design, y, rcond=None)
    variance = 0.0
    known = False
    dof = len(x) - (degree + 1)
    if dof > 0:
        residual = y - design @ coeffs
        sigma2 = float(residual @ residual) / dof
        variance += sigma2 * float(np.linalg.inv(design.T @ design)[1, 1])
        known = True
    if degree == 3:
        linear = float(np.polyfit(x, y, 1)[0])
        variance += (float(coeffs[1]) - linear) ** 2
        known = True
    return float(coeffs[1]), (math.sqrt(variance) if known else None), float(coeffs[0])


def cubic_elastic_constants(normal_strains, sxx, syy, szz, shear_strains, syz) -> dict[str, tuple[float, float | None]]:
    """C11, C12 and C44 of a cubic crystal, each ``(value, std)``, by :func:`stress_strain_slope`.

    C11 = d sigma_xx / d e_xx and C12 = d sigma_yy / d e_xx = d sigma_zz / d e_xx under a normal strain e_xx;
    C44 = d sigma_yz / d gamma_yz under an engineering shear gamma_yz (the two sets of strains may be the same cells,
    as in the DFT rung's combined strain).  sigma_yy and sigma_zz are equal by the y-z mirror symmetry: their mean is
    one datum per strain, so the C12 std is not made sqrt(2) too small by counting one measurement twice.
    Stresses in tension-positive convention; the constants come out in the unit of the stresses.
    """
    sxx, syy, szz = (np.asarray(v, dtype=float) for v in (sxx, syy, szz))
    c11 = stress_strain_slope(normal_strains, sxx)[:2]
    c12 = stress_strain_slope(normal_strains, 0.5 * (syy + szz))[:2]
    c44 = stress_strain_slope(shear_strains, syz)[:2]
    return {'c11': c11, 'c12': c12, 'c44': c44}


def isotropic_cubic_constants(youngs_modulus: float, poisson_ratio: float) -> tuple[float, float, float]:
    """C11, C12, C44 of an isotropic material (C44 = (C11 - C12) / 2): a cubic crystal with Zener ratio 1."""
    lam = youngs_modulus * poisson_ratio / ((1 + poisson_ratio) * (1 - 2 * poisson_ratio))
    mu = youngs_modulus / (2 * (1 + poisson_ratio))
    return lam + 2 * mu, lam, mu


def e100(c11: float, c12: float, c44: float | None = None) -> float:
    """Young's modulus of a cubic crystal along <100>: (C11 - C12)(C11 + 2 C12) / (C11 + C12)."""
    return (c11 - c12) * (c11 + 2 * c12) / (c11 + c12)


def directional_modulus(c11: float, c12: float, c44: float, direction) -> float:
    """Young's modulus along ``direction`` (crystal axes): 1/E = S11 - 2 (S11 - S12 - S44/2)(n1^2 n2^2 + ...)."""
    n = np.asarray(direction, dtype=float)
    n = n / np.linalg.norm(n)
    s = np.linalg.inv(cubic_stiffness(c11, c12, c44))
    s11, s12, s44 = s[0, 0], s[0, 1], s[3, 3]
    gamma = n[0] ** 2 * n[1] ** 2 + n[1] ** 2 * n[2] ** 2 + n[2] ** 2 * n[0] ** 2
    return 1.0 / (s11 - 2.0 * (s11 - s12 - s44 / 2.0) * gamma)


def bunge_matrix(phi1: float, Phi: float, phi2: float) -> np.ndarray:  # noqa: N803 (the standard symbol)
    """Bunge orientation matrix ``g`` (degrees in): rows are the crystal axes in sample coordinates.

    ``v_crystal = g @ v_sample``; hence the sample direction x seen from the crystal is ``g[:, 0]``.
    """
    p1, p, p2 = np.radians([phi1, Phi, phi2])
    c1, s1, c, s, c2, s2 = math.cos(p1), math.sin(p1), math.cos(p), math.sin(p), math.cos(p2), math.sin(p2)
    return np.array(
        [
            [c1 * c2 - s1 * s2 * c, s1 * c2 + c1 * s2 * c, s2 * s],
            [-c1 * s2 - s1 * c2 * c, -s1 * s2 + c1 * c2 * c, c2 * s],
            [s1 * s, -c1 * s, c],
        ]
    )


def _to_tensor(c66: np.ndarray) -> np.ndarray:
    c = np.zeros((3, 3, 3, 3))
    for a, (i, j) in enumerate(_VOIGT):
        for b, (k, m) in enumerate(_VOIGT):
            value = c66[a, b]
            for p, q in ((i, j), (j, i)):
                for r, s in ((k, m), (m, k)):
                    c[p, q, r, s] = value
    return c


def _to_voigt(c: np.ndarray) -> np.ndarray:
    return np.array([[c[i, j, k, m] for (k, m) in _VOIGT] for (i, j) in _VOIGT])


def rotate_stiffness(c66: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``C'_ijkl = R_ip R_jq R_kr R_ls C_pqrs``: the stiffness in the frame that ``rotation`` maps into."""
    tensor = np.einsum('ip,jq,kr,ls,pqrs->ijkl', rotation, rotation, rotation, rotation, _to_tensor(c66))
    return _to_voigt(tensor)


def sample_stiffnesses(c11: float, c12: float, c44: float, euler_angles) -> np.ndarray:
    """Stiffness of each grain in the sample frame, shape ``(n, 6, 6)`` (crystal -> sample by ``g^T``)."""
    crystal = _to_tensor(cubic_stiffness(c11, c12, c44))
    rotations = np.array([bunge_matrix(*angles).T for angles in np.atleast_2d(euler_angles)])
    # one contraction at a time keeps it O(n * 3^5) instead of building the full product
    tensor = np.einsum('nls,pqrs->npqrl', rotations, crystal)
    tensor = np.einsum('nkr,npqrl->npqkl', rotations, tensor)
    tensor = np.einsum('njq,npqkl->npjkl', rotations, tensor)
    tensor = np.einsum('nip,npjkl->nijkl', rotations, tensor)
    index = np.array(_VOIGT)
    return tensor[:, index[:, 0][:, None], index[:, 1][:, None], index[:, 0][None, :], index[:, 1][None, :]]


def moduli_from_compliance(s66: np.ndarray, axis: int = 0, lateral: int = 1) -> tuple[float, float]:
    """Young's modulus along ``axis`` and Poisson ratio ``-eps_lateral / eps_axis`` from a compliance matrix."""
    return 1.0 / s66[axis, axis], -s66[lateral, axis] / s66[axis, axis]


def voigt_reuss_hill(c11: float, c12: float, c44: float, euler_angles, weights=None) -> dict[str, float]:
    """Voigt, Reuss and Hill estimates of E and nu along sample x (lateral y) for a set of grain orientations.

    :param euler_angles: ``(n, 3)`` Bunge angles in degrees (crystal -> sample).
    :param weights: area (volume) fractions of the grains; equal weights if omitted.
    :returns: ``{'youngs_modulus_voigt', 'youngs_modulus_reuss', 'youngs_modulus_hill', 'poisson_ratio_voigt',
        'poisson_ratio_reuss', 'poisson_ratio_hill'}`` in the units of the Cij.  Voigt averages the stiffness (uniform
        strain: upper bound), Reuss the compliance (uniform stress: lower bound); Hill is their mean.
    """
    stiffnesses = sample_stiffnesses(c11, c12, c44, euler_angles)
    w = np.full(len(stiffnesses), 1.0 / len(stiffnesses)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(stiffnesses),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError('weights must be one non-negative number per grain')
    w = w / w.sum()
    c_voigt = np.einsum('g,gij->ij', w, stiffnesses)
    s_reuss = np.einsum('g,gij->ij', w, np.linalg.inv(stiffnesses))
    e_v, nu_v = moduli_from_compliance(np.linalg.inv(c_voigt))
    e_r, nu_r = moduli_from_compliance(s_reuss)
    return {
        'youngs_modulus_voigt': e_v,
        'youngs_modulus_reuss': e_r,
        'youngs_modulus_hill': 0.5 * (e_v + e_r),
        'poisson_ratio_voigt': nu_v,
        'poisson_ratio_reuss': nu_r,
        'poisson_ratio_hill': 0.5 * (nu_v + nu_r),
    }


def von_mises(stress) -> np.ndarray:
    """Von Mises equivalent stress of 3x3 stress tensors (any leading shape)."""
    s = np.asarray(stress, dtype=float)
    deviator = s - np.trace(s, axis1=-2, axis2=-1)[..., None, None] * np.eye(3) / 3.0
    return np.sqrt(1.5 * np.einsum('...ij,...ij->...', deviator, deviator))

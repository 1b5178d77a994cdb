"""Periodic Sigma5(310)[001] symmetric-tilt bicrystal for an fcc metal, built with ase and written as LAMMPS data."""

from __future__ import annotations

import io
import math
import typing as t

import numpy as np

__all__ = (
    'GRAIN_DIRECTIONS',
    'boundary_area',
    'build_sigma5_bicrystal',
    'lammps_data',
    'scan_configurations',
    'shift_grid',
)

#: Lab axes of the lower grain as crystal directions: x = [-1 3 0], y = [0 0 1] (the tilt axis), z = [3 1 0] (the
#: boundary normal).  The upper grain is its mirror image through the (310) plane, which for a cubic crystal is the
#: 36.87 deg rotation about [001] that defines Sigma5.
GRAIN_DIRECTIONS = ([-1, 3, 0], [0, 0, 1], [3, 1, 0])


def build_sigma5_bicrystal(element: str, a0: float, repeats: tuple[int, int, int]):
    """Return an ase ``Atoms`` bicrystal with two Sigma5(310)[001] boundaries (at z = 0 and z = Lz / 2).

    The cell is periodic in all directions, so it holds two boundaries; the upper grain (z >= Lz / 2) is the mirror of
    the lower one.  Why mirror rather than rotate: the mirror keeps the two boundaries crystallographically identical
    for every rigid shift, so the energy per boundary is (E - N e_coh) / (2 A).

    :param element: chemical symbol of an fcc element.
    :param a0: lattice constant of the potential in angstrom (the boundary-plane dimensions are fixed by it).
    :param repeats: (nx, ny, nz) repetitions of the 10-atom oriented cell in each grain (nz per grain).
    :returns: ``ase.Atoms`` with ``2 * 10 * nx * ny * nz`` atoms in an orthorhombic cell.
    """
    from ase.lattice.cubic import FaceCenteredCubic

    nx, ny, nz = (int(n) for n in repeats)
    if min(nx, ny, nz) < 1:
        raise ValueError(f'bicrystal repeats must be positive integers, got {repeats}')
    lower = FaceCenteredCubic(
        directions=[list(d) for d in GRAIN_DIRECTIONS], size=(nx, ny, nz), symbol=element, latticeconstant=a0, pbc=True
    )
    lengths = lower.cell.lengths()
    lz = lengths[2]
    positions = lower.get_positions()
    # Wrap onto [0, Lz): ase can leave atoms a rounding error below zero.
    positions[:, 2] = np.mod(positions[:, 2] + 1e-6, lz) - 1e-6
    # Both boundaries are coincidence planes shared by the two grains (the CSL construction): the lower grain spans
    # [0, Lz] including the periodic image of its z = 0 plane at Lz, and the upper grain is its mirror through z = Lz,
    # minus the two shared planes.  With this the two boundaries of the periodic cell are equivalent.
    top_plane = positions[np.abs(positions[:, 2]) < 1e-4].copy()
    top_plane[:, 2] = lz
    inner = positions[positions[:, 2] > 1e-4]
    upper = inner.copy()
    upper[:, 2] = 2 * lz - upper[:, 2]
    from ase import Atoms

    all_positions = np.vstack([positions, top_plane, upper])
    atoms = Atoms(symbols=[element] * len(all_positions), positions=all_positions, pbc=True)
    atoms.set_cell([lengths[0], lengths[1], 2 * lz])
    atoms.info['boundary_z'] = (0.0, float(lz))
    return atoms


def boundary_area(atoms) -> float:
    """Area of one boundary in angstrom^2 (the x-y face of the cell)."""
    lengths = atoms.cell.lengths()
    return float(lengths[0] * lengths[1])


def shift_grid(a0: float, nx: int, ny: int) -> list[tuple[float, float]]:
    """Rigid in-plane shifts of the upper grain covering one period of its in-plane lattice, in angstrom.

    The (310) plane of an fcc lattice has the rectangular in-plane lattice a/2[-1 3 0] x a[001], so shifts beyond
    (sqrt(10) a / 2, a) repeat; ``nx`` x ``ny`` points sample that cell uniformly.
    """
    if nx < 1 or ny < 1:
        raise ValueError(f'the shift grid needs at least one point per direction, got {nx} x {ny}')
    px, py = math.sqrt(10.0) * a0 / 2.0, a0
    return [(i * px / nx, j * py / ny) for i in range(nx) for j in range(ny)]


def lammps_data(atoms) -> str:
    """The text of a LAMMPS data file for ``atoms``, as the rung's scripts read it: ``atomic`` style, ``metal`` units.

    Written by ase (:func:`ase.io.lammpsdata.write_lammps_data`), with the masses; one atom type per element.
    """
    from ase.io.lammpsdata import write_lammps_data

    stream = io.StringIO()
    write_lammps_data(stream, atoms, masses=True, units='metal', atom_style='atomic')
    return stream.getvalue()


def scan_configurations(a0: float, shifts: tuple[int, int], overlap_cutoffs: t.Sequence[float]) -> list[dict]:
    """The configurations of a grain-boundary scan: every rigid shift of :func:`shift_grid` x every overlap cut-off.

    Each is ``{label, shift_x, shift_y, cutoff}`` (angstrom), labelled ``s<shift index>c<cut-off index>``.
    """
    return [
        {'label': f's{index}c{j}', 'shift_x': sx, 'shift_y': sy, 'cutoff': cutoff}
        for index, (sx, sy) in enumerate(shift_grid(a0, *shifts))
        for j, cutoff in enumerate(overlap_cutoffs)
    ]

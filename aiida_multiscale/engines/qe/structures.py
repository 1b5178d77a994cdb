"""Cubic cells for the DFT rung: build them from an element, check a given one, and read off the cubic a0."""

from __future__ import annotations

import re

import numpy as np

__all__ = (
    'CUBIC_LATTICES',
    'CubicStructureError',
    'build_cubic_atoms',
    'check_cubic_structure',
    'conventional_lattice_parameter',
    'guess_functional',
    'reference_lattice',
)

#: Monatomic cubic Bravais lattices: one atom per primitive cell, so a homogeneous strain needs no internal relaxation.
CUBIC_LATTICES = ('fcc', 'bcc', 'sc')

#: How far each functional family is known to put a0 from experiment on average (LDA overbinds, PBE underbinds).
#: Only used to centre the first EOS grid, so that the minimum usually falls inside it and no SCF is wasted.
FUNCTIONAL_LATTICE_SCALE = {'lda': 0.985, 'pbe': 1.01, 'pbesol': 0.997}


class CubicStructureError(ValueError):
    """The structure or element cannot be treated by the cubic EOS + stress-strain scheme; the message says why."""


def reference_lattice(element: str) -> tuple[str, float]:
    """Return ``(lattice, a_experiment)`` of ``element``'s ground state from ASE's reference data.

    :raises CubicStructureError: for an unknown symbol, or an element whose ground state is not fcc, bcc or sc.
    """
    from ase.data import atomic_numbers, reference_states

    if element not in atomic_numbers:
        raise CubicStructureError(f'element {element!r} is not a chemical symbol (use e.g. Al, Cu, Ni)')
    state = reference_states[atomic_numbers[element]]
    if not state or state.get('symmetry') not in CUBIC_LATTICES or 'a' not in state:
        symmetry = (state or {}).get('symmetry', 'unknown')
        raise CubicStructureError(
            f'element {element} has a {symmetry} ground state; this version builds only monatomic cubic crystals '
            f'({", ".join(CUBIC_LATTICES)}): pass a cubic `structure` instead of `element`'
        )
    return state['symmetry'], float(state['a'])


def build_cubic_atoms(element: str, lattice_parameter: float | None = None, functional: str | None = None):
    """Return the primitive cell (ASE ``Atoms``) of ``element`` in its cubic ground state, cube axes along x, y, z.

    Without ``lattice_parameter`` the experimental a is scaled by the functional's usual error, so that the first
    EOS grid is centred close to the DFT minimum.
    """
    from ase.build import bulk

    lattice, a_exp = reference_lattice(element)
    if lattice_parameter is None:
        lattice_parameter = a_exp * FUNCTIONAL_LATTICE_SCALE.get(functional or '', 1.0)
    return bulk(element, lattice, a=lattice_parameter)


def _spglib_dataset(cell, positions, numbers, symprec):
    import spglib

    return spglib.get_symmetry_dataset((np.asarray(cell), np.asarray(positions), np.asarray(numbers)), symprec=symprec)


def check_cubic_structure(cell, scaled_positions, numbers, symprec: float = 1e-3) -> None:
    """Check that the cell can be treated by this scheme; raise :class:`CubicStructureError` saying what to change.

    Three conditions, each needed for the Cij to mean what they say:

    * the space group is cubic (195-230): three independent constants C11, C12, C44;
    * the cube axes lie along Cartesian x, y, z: the strains and stresses are taken in that frame;
    * every atom sits on an inversion centre: then a homogeneous strain moves no atom off its site by symmetry, and
      the clamped-ion stress is the relaxed one (diamond or zincblende would need internal relaxation for C44).
    """
    cell = np.asarray(cell, dtype=float)
    positions = np.asarray(scaled_positions, dtype=float)
    numbers = np.asarray(numbers)
    dataset = _spglib_dataset(cell, positions, numbers, symprec)
    if dataset is None:
        raise CubicStructureError('the structure has no symmetry spglib can find: pass a cubic crystal')
    number = int(dataset.number)
    if not 195 <= number <= 230:
        raise CubicStructureError(
            f'the structure is not cubic (space group {dataset.international} #{number}); this version computes the '
            'three cubic elastic constants only: pass a cubic structure (space group 195-230) or `element`'
        )
    rotation = np.asarray(dataset.std_rotation_matrix)
    if not np.allclose(np.abs(rotation), np.round(np.abs(rotation)), atol=1e-3):
        raise CubicStructureError(
            'the cube axes of the structure are not along Cartesian x, y, z: rotate the structure so that they are '
            '(C11, C12 and C44 are defined in the cubic frame)'
        )
    if not all(_is_inversion_centre(cell, positions, numbers, index) for index in range(len(numbers))):
        raise CubicStructureError(
            'not every atom sits on an inversion centre: strained cells would need internal relaxation (as in '
            'diamond or zincblende), which this version does not do; pass a structure with atoms on inversion '
            'centres (fcc, bcc, sc, B2, rocksalt ...)'
        )


def _is_inversion_centre(cell, scaled_positions, numbers, index: int, tolerance: float = 1e-3) -> bool:
    """Whether the inversion through atom ``index`` maps the crystal onto itself, species included."""
    frac = np.asarray(scaled_positions) % 1.0
    for position, number in zip(frac, numbers):
        image = 2 * frac[index] - position
        delta = frac - image
        delta -= np.round(delta)
        distances = np.linalg.norm(delta @ cell, axis=1)
        match = int(np.argmin(distances))
        if distances[match] > tolerance or numbers[match] != number:
            return False
    return True


def conventional_lattice_parameter(cell, scaled_positions, numbers, symprec: float = 1e-3) -> float:
    """Return the cubic lattice parameter of the conventional cell (Angstrom), e.g. a = (4 V_atom)^(1/3) for fcc."""
    dataset = _spglib_dataset(cell, scaled_positions, numbers, symprec)
    n_conv = len(dataset.std_types)
    volume_per_atom = abs(np.linalg.det(np.asarray(cell, dtype=float))) / len(numbers)
    return float(np.cbrt(volume_per_atom * n_conv))


def guess_functional(upf_content: str) -> str:
    """Return 'lda', 'pbe', 'pbesol' or 'unknown' from the functional named in a UPF file (v1 or v2)."""
    match = re.search(r'functional\s*=\s*"([^"]*)"', upf_content, re.IGNORECASE)
    if match is None:
        match = re.search(r'^\s*(.*?)\s+Exchange-Correlation functional', upf_content, re.MULTILINE)
    if match is None:
        match = re.search(r'Functional:\s*(.*)$', upf_content, re.MULTILINE)
    if match is None:
        return 'unknown'
    words = match.group(1).upper().split()
    if 'PSX' in words or 'PBESOL' in words:
        return 'pbesol'
    if 'PBX' in words or 'PBE' in words:
        return 'pbe'
    if 'PZ' in words or ('SLA' in words and 'NOGX' in words) or 'LDA' in words:
        return 'lda'
    return 'unknown'

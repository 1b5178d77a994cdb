"""LAMMPS input scripts for the MD rung: bulk (a0, cohesive energy, Cij) and the grain-boundary shift scan.

Each script batches many cheap evaluations into one LAMMPS run (all strains in one input, many bicrystal configurations
in another), because AiiDA costs 0.2-0.5 s per process and a configuration of a few hundred atoms minimises in less.

aiida-lammps 1.0.2 workarounds that shape these scripts (found with aiida-core 2.9.4):

* ``lammps.raw`` cannot pass ``-var`` on the command line: every value is rendered into the script here.
* its parser reads only the first thermo block and crashes when a later ``thermo_style`` has more columns: every
  script uses the single :data:`THERMO_STYLE`; the numbers we need go to ``results.dat`` via ``print ... append``.
* any output line containing the word for a LAMMPS failure in capitals gives exit 309: no comment, print or label in
  these scripts contains it (:func:`check_script` enforces that).
* an unconverged minimisation still exits 0: the stopping criteria are parsed from the log and checked by the caller.
"""

from __future__ import annotations

import typing as t

__all__ = (
    'GB_MINIMISATIONS_PER_CONFIGURATION',
    'RESULTS_FILENAME',
    'THERMO_STYLE',
    'check_script',
    'pair_lines',
    'render_bulk_script',
    'render_gb_script',
)

RESULTS_FILENAME = 'results.dat'
#: How many ``minimize`` commands :func:`render_gb_script` runs per configuration (to map stopping criteria back).
GB_MINIMISATIONS_PER_CONFIGURATION = 4
THERMO_STYLE = 'thermo_style custom step pe press pxx pyy pzz pyz lx ly lz fnorm'

#: pair_style -> how ``pair_coeff`` names the file and the element (``eam`` funcfl files carry one element and take
#: none; an alloy file gives the simulated element's part; ``meam`` would take a NULL parameter file, which is why the
#: potential validation refuses MEAM files).
PAIR_COEFF = {
    'eam': 'pair_coeff * * {filename}',
    'eam/alloy': 'pair_coeff * * {filename} {element}',
    'eam/fs': 'pair_coeff * * {filename} {element}',
    'meam': 'pair_coeff * * {filename} {element} NULL {element}',
}


def pair_lines(pair_style: str, filename: str, element: str) -> str:
    """The ``pair_style`` / ``pair_coeff`` lines for a single-element potential file."""
    if pair_style not in PAIR_COEFF:
        raise ValueError(f'unsupported pair_style {pair_style!r}; supported: {", ".join(PAIR_COEFF)}')
    return f'pair_style {pair_style}\n' + PAIR_COEFF[pair_style].format(filename=filename, element=element)


def check_script(text: str) -> str:
    """Return ``text`` unchanged, or raise if it would trip aiida-lammps' error detection (exit 309)."""
    if 'ERROR' in text:
        raise ValueError('a LAMMPS script for lammps.raw must not contain the word ERROR (aiida-lammps exit 309)')
    return text


def _minimize(settings: t.Mapping) -> str:
    return f'minimize {settings["etol"]} {settings["ftol"]} {settings["maxiter"]} {settings["maxeval"]}'


def _header() -> str:
    return 'units metal\natom_style atomic\nboundary p p p\natom_modify map array'


def render_bulk_script(
    *,
    element: str,
    mass: float,
    pair_style: str,
    potential_filename: str,
    a_guess: float,
    repeats: int = 3,
    strains: t.Sequence[float] = (-0.01, -0.005, 0.005, 0.01),
    minimize: t.Mapping | None = None,
) -> str:
    """Script for a0 (isotropic box relaxation), cohesive energy and the stress-strain data for C11, C12, C44.

    Normal strains e_xx and engineering shear strains gamma_yz = e are applied to the relaxed cubic cell, atoms are
    relaxed at fixed cell (relaxed-ion constants), and the stress (tension positive, GPa) is printed for each.
    """
    minimize = {'etol': 0.0, 'ftol': 1e-10, 'maxiter': 10000, 'maxeval': 100000, **(minimize or {})}
    n = int(repeats)
    lines = [
        f'# bulk fcc {element}: lattice constant, cohesive energy, elastic constants',
        _header(),
        f'lattice fcc {a_guess:.8f}',
        f'region box prism 0 {n} 0 {n} 0 {n} 0 0 0 units lattice',
        'create_box 1 box',
        'create_atoms 1 box',
        f'mass 1 {mass:.6f}',
        pair_lines(pair_style, potential_filename, element),
        'neighbor 1.0 bin',
        THERMO_STYLE,
        'thermo_modify norm no',
        'min_style cg',
        # Two rounds: box/relax converges the pressure to the tolerance only after the cell stops changing.
        'fix relax all box/relax iso 0.0 vmax 0.001',
        _minimize(minimize),
        _minimize(minimize),
        'unfix relax',
        _minimize(minimize),
        'variable L0 equal $(lx)',
        f'variable a0 equal $(lx/{n})',
        'variable ecoh equal $(-pe/atoms)',
        f'print "natoms $(atoms)" append {RESULTS_FILENAME} screen no',
        f'print "a0 $(v_a0:%.12g)" append {RESULTS_FILENAME} screen no',
        f'print "cohesive_energy $(v_ecoh:%.12g)" append {RESULTS_FILENAME} screen no',
        f'print "pressure $(press:%.8g)" append {RESULTS_FILENAME} screen no',
    ]
    for mode in ('xx', 'yz'):
        for strain in strains:
            if mode == 'xx':
                box = f'x final 0.0 $(v_L0*(1.0+({strain}))) y final 0.0 ${{L0}} z final 0.0 ${{L0}} yz final 0.0'
            else:
                box = f'x final 0.0 ${{L0}} y final 0.0 ${{L0}} z final 0.0 ${{L0}} yz final $(v_L0*({strain}))'
            lines += [
                f'change_box all {box} remap units box',
                _minimize(minimize),
                # Stress = -pressure; bar -> GPa.
                f'print "strain {mode} {strain} $(-pxx/1e4:%.10g) $(-pyy/1e4:%.10g) $(-pzz/1e4:%.10g) '
                f'$(-pyz/1e4:%.10g)" append {RESULTS_FILENAME} screen no',
            ]
    return check_script('\n'.join(lines) + '\n')


def render_gb_script(
    *,
    element: str,
    pair_style: str,
    potential_filename: str,
    data_filename: str,
    upper_z: tuple[float, float],
    configurations: t.Sequence[t.Mapping],
    minimize: t.Mapping | None = None,
) -> str:
    """Script that relaxes one bicrystal per configuration ``{label, shift_x, shift_y, cutoff}`` in one LAMMPS run.

    For each: read the unshifted bicrystal, move the upper grain rigidly in the boundary plane, delete one atom of
    every pair closer than ``cutoff``, minimise the atoms, then atoms and the cell length normal to the boundary
    (``box/relax z``), and print the energy, the atom count, the cell and the shortest interatomic distance.
    """
    minimize = {'etol': 1e-10, 'ftol': 1e-4, 'maxiter': 5000, 'maxeval': 50000, **(minimize or {})}
    lines = [f'# Sigma5(310)[001] bicrystal: {len(configurations)} rigid-shift / overlap-cutoff configurations']
    for config in configurations:
        label = config['label']
        lines += [
            'clear',
            _header(),
            f'read_data {data_filename}',
            pair_lines(pair_style, potential_filename, element),
            'neighbor 1.0 bin',
            'neigh_modify delay 0 every 1 check yes',
            f'region upper block INF INF INF INF {upper_z[0]:.6f} {upper_z[1]:.6f} units box',
            'group upper region upper',
            f'displace_atoms upper move {config["shift_x"]:.6f} {config["shift_y"]:.6f} 0.0 units box',
            f'delete_atoms overlap {config["cutoff"]:.4f} all all',
            'compute pairdist all pair/local dist',
            'compute dmin all reduce min c_pairdist inputs local',
            THERMO_STYLE + ' c_dmin',
            'thermo_modify norm no',
            'min_style cg',
            _minimize(minimize),
            'fix relax all box/relax z 0.0 vmax 0.01',
            _minimize(minimize),
            _minimize(minimize),
            'unfix relax',
            _minimize(minimize),
            f'print "config {label} $(atoms) $(pe:%.12g) $(lx:%.10g) $(ly:%.10g) $(lz:%.10g) $(c_dmin:%.6g) '
            f'$(press:%.6g)" append {RESULTS_FILENAME} screen no',
        ]
    return check_script('\n'.join(lines) + '\n')

"""The DFT rung's calcfunctions: every structure and every derived number, so the graph shows where it came from."""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import calcfunction

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.qe import elastic as elastic_fits
from aiida_multiscale.engines.qe import structures as cubic
from aiida_multiscale.physics import eos as eos_fits

__all__ = (
    'create_cubic_structure',
    'fit_elastic_constants',
    'fit_equation_of_state',
    'fit_kwargs',
    'refine_kpoints_mesh',
    'scale_structure_volumes',
    'strain_structure',
)


@calcfunction
def create_cubic_structure(element: orm.Str, functional: orm.Str) -> orm.StructureData:
    """The primitive cubic cell of ``element``, at the experimental a scaled by the functional's usual error."""
    atoms = cubic.build_cubic_atoms(element.value, functional=functional.value)
    return orm.StructureData(ase=atoms)


@calcfunction
def scale_structure_volumes(structure: orm.StructureData, factors: orm.List) -> dict:
    """Copies of ``structure`` with the volume scaled by each factor (isotropically, fractional positions kept)."""
    results = {}
    for index, factor in enumerate(factors.get_list()):
        atoms = structure.get_ase()
        atoms.set_cell(atoms.cell.array * float(factor) ** (1 / 3), scale_atoms=True)
        results[f'structure_{index}'] = orm.StructureData(ase=atoms)
    return results


@calcfunction
def strain_structure(structure: orm.StructureData, strains: orm.List) -> dict:
    """Copies of ``structure`` deformed by the strain of :func:`~aiida_multiscale.engines.qe.elastic.elastic_strain`."""
    results = {}
    for index, delta in enumerate(strains.get_list()):
        atoms = structure.get_ase()
        deformation = np.eye(3) + elastic_fits.elastic_strain(float(delta))
        atoms.set_cell(atoms.cell.array @ deformation.T, scale_atoms=True)
        results[f'structure_{index}'] = orm.StructureData(ase=atoms)
    return results


@calcfunction
def refine_kpoints_mesh(kpoints: orm.KpointsData, factor: orm.Float) -> orm.KpointsData:
    """A Monkhorst-Pack mesh ``factor`` times denser along each direction (rounded up), same offset."""
    mesh, offset = kpoints.get_kpoints_mesh()
    refined = orm.KpointsData()
    refined.set_kpoints_mesh([int(np.ceil(k * factor.value - 1e-9)) for k in mesh], offset)
    return refined


def _dft_metadata(pw_parameters: orm.Dict, kpoints: orm.KpointsData, pseudos: dict, family: str) -> dict:
    """The convergence metadata that travels with every DFT handoff."""
    system = pw_parameters.get_dict().get('SYSTEM', {})
    mesh, offset = kpoints.get_kpoints_mesh()
    functionals = {cubic.guess_functional(pseudo.get_content()) for pseudo in pseudos.values()}
    return {
        'code': 'Quantum ESPRESSO pw.x',
        'ecutwfc': system['ecutwfc'],
        'ecutrho': system.get('ecutrho', 4 * system['ecutwfc']),
        'kpoints_mesh': [int(k) for k in mesh],
        'kpoints_offset': [float(k) for k in offset],
        'smearing': system.get('smearing', 'none') if system.get('occupations') == 'smearing' else 'none',
        'degauss': system.get('degauss', 0.0),
        'nspin': system.get('nspin', 1),
        'pseudos': {pseudo.element: pseudo.md5 for pseudo in pseudos.values()},
        'pseudo_family': family,
        'functional': functionals.pop() if len(functionals) == 1 else 'mixed',
        **_cutoffs_and_functional_notes(system, family, pseudos),
    }


def _cutoffs_and_functional_notes(system: dict, family: str, pseudos: dict) -> dict:
    """``cutoffs_source`` and, for LDA, ``functional_bias`` (the pseudopotential-family helper's keys)."""
    from aiida_multiscale.workflows.validation import dft_metadata_notes

    return dft_metadata_notes(system, family, pseudos)


def fit_kwargs(children, output: str, pseudos: dict, previous=()) -> dict:
    """The ``**kwargs`` of :func:`fit_equation_of_state` and :func:`fit_elastic_constants` (read by ``_split_kwargs``).

    ``structure_<i>`` and ``<output>_<i>`` of each finished SCF work chain in ``children``, ``pseudo_<kind>`` of every
    pseudopotential, and ``previous_<n>`` for the handoffs of coarser k-meshes.
    """
    kwargs = {f'structure_{i}': child.inputs.pw.structure for i, child in enumerate(children)}
    kwargs.update({f'{output}_{i}': child.outputs[output] for i, child in enumerate(children)})
    kwargs.update({f'pseudo_{kind}': pseudo for kind, pseudo in pseudos.items()})
    kwargs.update({f'previous_{n}': node for n, node in enumerate(previous)})
    return kwargs


def _split_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """The inverse of :func:`fit_kwargs`: ``({kind: pseudo}, {i: {name: node}})``; ``previous_<n>`` are left out."""
    pseudos = {key[len('pseudo_') :]: node for key, node in kwargs.items() if key.startswith('pseudo_')}
    indexed = {}
    for key, node in kwargs.items():
        if key.startswith(('pseudo_', 'previous_')):
            continue
        name, _, index = key.rpartition('_')
        indexed.setdefault(int(index), {})[name] = node
    return pseudos, indexed


@calcfunction
def fit_equation_of_state(
    reference: orm.StructureData, pw_parameters: orm.Dict, kpoints: orm.KpointsData, pseudo_family: orm.Str, **kwargs
) -> dict:
    """Birch-Murnaghan fit (ase.eos) of the SCF energies: the ``eos`` handoff and the ``structure`` at V0.

    ``kwargs``: ``structure_<i>`` and ``output_parameters_<i>`` of each SCF, and ``pseudo_<kind>`` for the metadata.
    """
    pseudos, points = _split_kwargs(kwargs)
    natoms = len(reference.sites)
    volumes = [points[i]['structure'].get_cell_volume() / natoms for i in sorted(points)]
    energies = [points[i]['output_parameters']['energy'] / natoms for i in sorted(points)]
    fit = eos_fits.fit_birch_murnaghan(volumes, energies)

    atoms = reference.get_ase()
    scale = (fit['v0'] * natoms / atoms.get_volume()) ** (1 / 3)
    atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
    a0 = cubic.conventional_lattice_parameter(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    note = f'Birch-Murnaghan fit (ase.eos) of {len(volumes)} SCF energies, std from the fit covariance'
    eos = HandoffData(
        {
            'a0': {
                'value': a0,
                'unit': 'angstrom',
                'std': a0 * fit['v0_std'] / (3 * fit['v0']),
                'note': 'cubic lattice parameter of the conventional cell at V0; ' + note,
            },
            'v0': {'value': fit['v0'], 'unit': 'angstrom**3', 'std': fit['v0_std'], 'note': 'per atom; ' + note},
            'e0': {'value': fit['e0'], 'unit': 'eV', 'std': fit['e0_std'], 'note': 'per atom, total energy; ' + note},
            'bulk_modulus': {'value': fit['b0'], 'unit': 'GPa', 'std': fit['b0_std'], 'note': note},
            'bulk_modulus_derivative': {
                'value': fit['bp'],
                'unit': 'dimensionless',
                'std': fit['bp_std'],
                'note': note,
            },
        },
        producer='fit_equation_of_state',
        from_scale='dft',
        to_scale='md',
        metadata={
            **_dft_metadata(pw_parameters, kpoints, pseudos, pseudo_family.value),
            'eos_volumes': volumes,
            'eos_energies': energies,
            'eos_rms_residual': fit['rms_residual'],
        },
    )
    return {'eos': eos, 'structure': orm.StructureData(ase=atoms)}


@calcfunction
def fit_elastic_constants(
    reference: orm.StructureData, pw_parameters: orm.Dict, kpoints: orm.KpointsData, pseudo_family: orm.Str, **kwargs
) -> HandoffData:
    """Linear stress-strain fits for C11, C12, C44 (GPa); std from the fit residuals.

    ``kwargs``: ``structure_<i>`` and ``output_trajectory_<i>`` of each strained SCF, ``pseudo_<kind>``, and the
    ``previous_<n>`` elastic handoffs of coarser k-meshes when the mesh is being converged.  The strain is
    recomputed from the cells (not taken on trust), and the stress is turned from QE's sign (compression positive) to
    the physical one (tension positive).
    """
    pseudos, points = _split_kwargs(kwargs)
    strains, stresses = [], []
    for index in sorted(points):
        strains.append(elastic_fits.strain_from_cells(reference.cell, points[index]['structure'].cell))
        stresses.append(-np.asarray(points[index]['output_trajectory'].get_array('stress'))[-1])
    fit = elastic_fits.fit_cubic_elastic_constants(strains, stresses)
    metadata = _dft_metadata(pw_parameters, kpoints, pseudos, pseudo_family.value)
    previous = [
        kwargs[key]
        for key in sorted(kwargs, key=lambda k: k.rpartition('_')[2].zfill(4))
        if key.startswith('previous_')
    ]
    if previous:
        names = ('c11', 'c12', 'c44')
        metadata['kpoints_convergence'] = [
            {'kpoints_mesh': node.metadata['kpoints_mesh'], **{name: node.value(name, 'GPa') for name in names}}
            for node in previous
        ] + [{'kpoints_mesh': metadata['kpoints_mesh'], **{name: fit[name] for name in names}}]
    note = (
        f'linear fit of stress against {len(strains)} strains (e_xx = e_yz = delta, max |delta| '
        f'{max(abs(s[0, 0]) for s in strains):.3g}) at a0, std from the fit residuals'
    )
    return HandoffData(
        {
            name: {'value': fit[name], 'unit': 'GPa', 'std': fit[f'{name}_std'], 'note': note}
            for name in ('c11', 'c12', 'c44')
        },
        producer='fit_elastic_constants',
        from_scale='dft',
        to_scale='md',
        metadata={
            **metadata,
            'strains': [float(s[0, 0]) for s in strains],
            'cubic_symmetry_error_gpa': fit['symmetry_error'],
            'residual_pressure_gpa': fit['residual_pressure'],
        },
    )

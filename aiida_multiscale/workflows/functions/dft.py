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
    'KPOINTS_MODES',
    'converge_elastic_constants',
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


def fit_kwargs(children, output: str, pseudos: dict) -> dict:
    """The ``**kwargs`` of :func:`fit_equation_of_state` and :func:`fit_elastic_constants` (read by ``_split_kwargs``).

    ``structure_<i>`` and ``<output>_<i>`` of each finished SCF work chain in ``children`` and ``pseudo_<kind>`` of
    every pseudopotential.
    """
    kwargs = {f'structure_{i}': child.inputs.pw.structure for i, child in enumerate(children)}
    kwargs.update({f'{output}_{i}': child.outputs[output] for i, child in enumerate(children)})
    kwargs.update({f'pseudo_{kind}': pseudo for kind, pseudo in pseudos.items()})
    return kwargs


def _split_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """The inverse of :func:`fit_kwargs`: ``({kind: pseudo}, {i: {name: node}})``."""
    pseudos = {key[len('pseudo_') :]: node for key, node in kwargs.items() if key.startswith('pseudo_')}
    indexed = {}
    for key, node in kwargs.items():
        if key.startswith('pseudo_'):
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
    """Stress-strain fits for C11, C12, C44 (GPa) on one k-mesh; std from the fit residuals only.

    ``kwargs``: ``structure_<i>`` and ``output_trajectory_<i>`` of each strained SCF and ``pseudo_<kind>``.  The
    strain is recomputed from the cells (not taken on trust), and the stress is turned from QE's sign (compression
    positive) to the physical one (tension positive).  One node per k-mesh: :func:`converge_elastic_constants` makes
    the handoff of the rung from these.
    """
    pseudos, points = _split_kwargs(kwargs)
    strains, stresses = [], []
    for index in sorted(points):
        strains.append(elastic_fits.strain_from_cells(reference.cell, points[index]['structure'].cell))
        stresses.append(-np.asarray(points[index]['output_trajectory'].get_array('stress'))[-1])
    fit = elastic_fits.fit_cubic_elastic_constants(strains, stresses)
    metadata = _dft_metadata(pw_parameters, kpoints, pseudos, pseudo_family.value)
    mesh = _mesh_label(metadata['kpoints_mesh'])
    note = (
        f'fit of stress against {len(strains)} strains (e_xx = e_yz = delta, max |delta| '
        f'{max(abs(s[0, 0]) for s in strains):.3g}) at a0 on the {mesh} k-mesh, std from the fit residuals only'
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


#: How the k-mesh of the strained SCFs was judged: ``refine`` (the convergence loop), ``estimate`` (one coarser
#: mesh beside the protocol's, no loop) or ``none`` (one mesh, the k-point error not estimated).
KPOINTS_MODES = ('refine', 'estimate', 'none')


def _mesh_label(mesh) -> str:
    """``24^3`` for a cubic mesh, ``24x24x20`` otherwise."""
    mesh = [int(k) for k in mesh]
    return f'{mesh[0]}^3' if len(set(mesh)) == 1 else 'x'.join(str(k) for k in mesh)


@calcfunction
def converge_elastic_constants(settings: orm.Dict, **kwargs) -> dict:
    """The rung's ``elastic`` handoff and its ``elastic_convergence`` record, from the per-mesh fits.

    ``kwargs``: ``mesh_<i>``, the :func:`fit_elastic_constants` handoff of each k-mesh, coarsest first.  ``settings``:
    ``mode`` (one of :data:`KPOINTS_MODES`), ``tolerance`` ({'gpa', 'relative'}: a constant has converged when it
    changed by less than the larger of the two), ``max_refinements`` and ``refinement_factor`` (for the record).

    The handed-on values are those of the densest (last) mesh.  Their std is the fit std and the change from the
    previous mesh in quadrature (:func:`~aiida_multiscale.engines.qe.elastic.std_with_kpoints_error`): the fit std
    alone says nothing about the k-point error, which for the shear constants of a metal is far larger.  Whether the
    mesh converged is decided here, by the same test the work chain's loop uses
    (:func:`~aiida_multiscale.engines.qe.elastic.cij_converged`); ``estimate`` never counts as converged, since no
    denser mesh was tried.  The smearing is the same on every mesh and is not converged: the note says so.
    """
    config = settings.get_dict()
    mode = config['mode']
    if mode not in KPOINTS_MODES:
        raise ValueError(f'settings.mode must be one of {KPOINTS_MODES}, got {mode!r}')
    tolerance = {'gpa': float(config['tolerance']['gpa']), 'relative': float(config['tolerance']['relative'])}
    meshes = [kwargs[key] for key in sorted(kwargs, key=lambda k: int(k.rpartition('_')[2]))]
    if not meshes:
        raise ValueError('need the elastic handoff of at least one k-mesh (mesh_0, mesh_1, ...)')
    names = elastic_fits.CUBIC_CONSTANTS

    history, previous = [], None
    for node in meshes:
        values = [node.value(name, 'GPa') for name in names]
        entry = {'kpoints_mesh': [int(k) for k in node.metadata['kpoints_mesh']], 'handoff_uuid': node.uuid}
        for name, value in zip(names, values, strict=True):
            entry[name] = value
            entry[f'{name}_std'] = node.get_quantity(name, 'GPa').std
        if previous is not None:
            entry['change_gpa'] = elastic_fits.cij_changes(previous, values)
            entry['tolerance_gpa'] = elastic_fits.cij_tolerances(values, tolerance['gpa'], tolerance['relative'])
            entry['within_tolerance'] = elastic_fits.cij_converged(
                previous, values, tolerance['gpa'], tolerance['relative']
            )
        history.append(entry)
        previous = values

    final, last = meshes[-1], history[-1]
    within = last.get('within_tolerance', False)
    converged = bool(mode == 'refine' and within)
    changes = last.get('change_gpa', {})
    metadata = dict(final.metadata)
    smearing = f'{metadata.get("smearing", "none")} {metadata.get("degauss", 0.0):g} Ry'
    label = _mesh_label(last['kpoints_mesh'])
    tolerance_text = f'{tolerance["gpa"]:g} GPa or {tolerance["relative"]:.0%}, whichever is larger'
    if len(meshes) > 1:
        before = _mesh_label(history[-2]['kpoints_mesh'])
        error = f'std = fit std and the change from the {before} to the {label} k-mesh in quadrature'
    else:
        error = 'std = fit std only: the k-point error was NOT estimated'
    if len(meshes) == 1:
        state = 'k-mesh not converged: one mesh only, the k-point error not estimated'
    elif mode == 'refine' and converged:
        state = f'k-mesh converged at {label} (each of C11, C12, C44 changed by less than {tolerance_text})'
    elif mode == 'refine':
        state = (
            f'k-mesh NOT converged: still changing by more than {tolerance_text} after '
            f'{len(meshes) - 1} refinement(s) (at most {config.get("max_refinements")})'
        )
    elif mode == 'estimate':
        state = (
            f'k-mesh not converged (no refinement loop in this protocol); the k-point error is estimated by the '
            f'change from one coarser mesh, {"within" if within else "above"} {tolerance_text}'
        )
    else:
        state = 'k-mesh not converged (convergence off)'
    context = f'; {state}; smearing fixed at {smearing} (not converged)'

    quantities = {}
    for name in names:
        fitted = final.get_quantity(name, 'GPa')
        std = elastic_fits.std_with_kpoints_error(fitted.std, changes.get(name))
        quantities[name] = {
            'value': fitted.value,
            'unit': 'GPa',
            'std': std,
            'note': f'{fitted.note}; {error}{context}',
        }
    metadata.update(
        {
            'kpoints_convergence': [
                {key: entry[key] for key in ('kpoints_mesh', *names, *(f'{n}_std' for n in names))} for entry in history
            ],
            'kpoints_converged': converged,
            'kpoints_tolerance': tolerance,
            'kpoints_mode': mode,
            'kpoints_error_gpa': changes or None,
        }
    )
    elastic = HandoffData(
        quantities, producer='converge_elastic_constants', from_scale='dft', to_scale='md', metadata=metadata
    )
    record = orm.Dict(
        {
            'mode': mode,
            'converged': converged,
            'tolerance': tolerance,
            'max_refinements': config.get('max_refinements'),
            'refinement_factor': config.get('refinement_factor'),
            'smearing': metadata.get('smearing'),
            'degauss': metadata.get('degauss'),
            'smearing_converged': False,
            'final_mesh': last['kpoints_mesh'],
            'last_change_gpa': changes or None,
            'meshes': history,
            'note': state,
        }
    )
    return {'elastic': elastic, 'elastic_convergence': record}

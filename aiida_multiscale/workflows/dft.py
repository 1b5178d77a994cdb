"""``DftWorkChain``: equation of state and cubic elastic constants of a crystal with Quantum ESPRESSO."""

from __future__ import annotations

import typing as t

import numpy as np
from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import ProcessHandlerReport, WorkChain, append_, calcfunction, process_handler, while_
from aiida_quantumespresso.calculations.pw import PwCalculation
from aiida_quantumespresso.common.types import RestartType
from aiida_quantumespresso.workflows.pw.base import PwBaseWorkChain

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.qe import elastic as elastic_fits
from aiida_multiscale.engines.qe import structures as cubic
from aiida_multiscale.physics import eos as eos_fits
from aiida_multiscale.physics.elasticity import born_stability_violations, bulk_modulus_from_cij
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin

__all__ = ('DEFAULT_PARAMETERS', 'DftWorkChain', 'MultiscalePwBaseWorkChain')

#: Numerical settings of the work chain (the ``parameters`` input); a partial Dict is completed with these.
DEFAULT_PARAMETERS = {
    'eos_points': 7,
    'eos_volume_range': 0.06,
    'eos_max_recentre': 2,
    'strains': [-0.01, -0.005, 0.0, 0.005, 0.01],
    'bulk_modulus_tolerance': 0.05,
    'kpoints_distance': 0.115,
    'kpoints_mesh': None,
    'elastic_kpoints_distance': None,
    'kpoints_convergence': False,
    'kpoints_convergence_tolerance': 0.05,
    'kpoints_max_refinements': 2,
    'kpoints_refinement_factor': 1.25,
}

_EXCLUDED_SCF_INPUTS = (
    'clean_workdir',
    'pw.structure',
    'pw.pseudos',
    'kpoints',
    'kpoints_distance',
    'kpoints_force_parity',
)


# ---------------------------------------------------------------------------------------------------------------------
# Validators: bad input is refused before anything is submitted, with a message that says how to fix it.
# ---------------------------------------------------------------------------------------------------------------------
def _load_family(label: str):
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    query = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}, subclassing=True)
    return query.first(flat=True)


def _family_labels() -> list[str]:
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    return sorted(orm.QueryBuilder().append(PseudoPotentialFamily, project='label', subclassing=True).all(flat=True))


def _structure_elements(structure: orm.StructureData) -> list[str]:
    return sorted({kind.symbol for kind in structure.kinds})


def validate_parameters(node, _=None):
    """Check the ``parameters`` Dict: known keys, sensible EOS grid and a strain set symmetric about zero."""
    if node is None:
        return None
    values = node.get_dict()
    unknown = set(values) - set(DEFAULT_PARAMETERS)
    if unknown:
        return f'parameters: unknown key(s) {sorted(unknown)}; allowed: {", ".join(sorted(DEFAULT_PARAMETERS))}'
    merged = {**DEFAULT_PARAMETERS, **values}
    points = merged['eos_points']
    if not isinstance(points, int) or points < 5 or points % 2 == 0:
        return f'parameters.eos_points must be an odd integer >= 5 (a centred 4-parameter fit), got {points!r}'
    if not 0 < merged['eos_volume_range'] < 0.3:
        return (
            f'parameters.eos_volume_range must be in (0, 0.3) (relative half-width), got {merged["eos_volume_range"]}'
        )
    if not isinstance(merged['eos_max_recentre'], int) or merged['eos_max_recentre'] < 0:
        return 'parameters.eos_max_recentre must be an integer >= 0'
    strains = merged['strains']
    if not isinstance(strains, list) or len(strains) < 2 or len(set(strains)) != len(strains):
        return (
            'parameters.strains must be a list of at least two distinct strains, e.g. [-0.01, -0.005, 0, 0.005, 0.01]'
        )
    if any(abs(s) > 0.03 for s in strains):
        return 'parameters.strains: keep |strain| <= 0.03, beyond that the stress is not linear in the strain'
    if not np.allclose(sorted(strains), sorted(-s for s in strains)):
        return 'parameters.strains must be symmetric about zero (the quadratic terms then cancel in the linear fit)'
    if not 0 < merged['bulk_modulus_tolerance'] < 1:
        return 'parameters.bulk_modulus_tolerance must be a fraction in (0, 1), e.g. 0.05'
    mesh = merged['kpoints_mesh']
    if mesh is not None and (not isinstance(mesh, list) or len(mesh) != 3 or any(int(k) < 1 for k in mesh)):
        return f'parameters.kpoints_mesh must be None or three positive integers, got {mesh!r}'
    if mesh is None and not merged['kpoints_distance'] > 0:
        return 'parameters.kpoints_distance must be > 0 (1/Angstrom, 2 pi included, as in aiida-quantumespresso)'
    elastic_distance = merged['elastic_kpoints_distance']
    if elastic_distance is not None and not (isinstance(elastic_distance, (int, float)) and elastic_distance > 0):
        return f'parameters.elastic_kpoints_distance must be None or > 0 (1/Angstrom), got {elastic_distance!r}'
    if not isinstance(merged['kpoints_convergence'], bool):
        return 'parameters.kpoints_convergence must be true or false'
    if not 0 < merged['kpoints_convergence_tolerance'] < 1:
        return 'parameters.kpoints_convergence_tolerance must be a fraction in (0, 1), e.g. 0.05'
    if not isinstance(merged['kpoints_max_refinements'], int) or merged['kpoints_max_refinements'] < 1:
        return 'parameters.kpoints_max_refinements must be an integer >= 1'
    if not merged['kpoints_refinement_factor'] > 1.05:
        return 'parameters.kpoints_refinement_factor must be > 1.05 (each refinement must change the mesh)'
    return None


def validate_element(node, _=None):
    """The element must be a chemical symbol with a monatomic cubic ground state."""
    if node is None:
        return None
    try:
        cubic.reference_lattice(node.value)
    except cubic.CubicStructureError as exc:
        return f'element: {exc}'
    return None


def validate_structure(node, _=None):
    """The structure must be cubic, with the cube axes along x, y, z and every atom on an inversion centre."""
    if node is None:
        return None
    atoms = node.get_ase()
    try:
        cubic.check_cubic_structure(atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    except cubic.CubicStructureError as exc:
        return f'structure: {exc}'
    return None


def validate_inputs(inputs, _=None):
    """Cross-checks: element xor structure, the code's plugin, the family exists and covers the elements, cutoffs."""
    has_element, has_structure = 'element' in inputs, 'structure' in inputs
    if has_element == has_structure:
        return 'give exactly one of `element` (e.g. Str("Al")) and `structure` (a cubic StructureData)'

    code = inputs.get('scf', {}).get('pw', {}).get('code')
    if code is not None:
        plugin = getattr(code, 'default_calc_job_plugin', None)
        if plugin != 'quantumespresso.pw':
            return (
                f'scf.pw.code: code {code.full_label!r} is for plugin {plugin!r}, not quantumespresso.pw: pass a pw.x '
                'code (e.g. pw@localhost, made by `aiida-multiscale setup`)'
            )

    label = inputs['pseudo_family'].value
    family = _load_family(label)
    if family is None:
        available = ', '.join(_family_labels()) or 'none'
        return (
            f'pseudo_family: no pseudopotential family {label!r} (available: {available}); create it with '
            '`aiida-multiscale setup` or `aiida-pseudo install family FOLDER LABEL -P pseudo.upf`'
        )
    elements = [inputs['element'].value] if has_element else _structure_elements(inputs['structure'])
    missing = [element for element in elements if element not in family.elements]
    if missing:
        return (
            f'pseudo_family: family {label!r} has no pseudopotential for {", ".join(missing)} (it has '
            f'{", ".join(sorted(family.elements))}): choose another family or add the UPF file to it'
        )

    parameters = inputs.get('scf', {}).get('pw', {}).get('parameters')
    if parameters is not None:
        system = parameters.get_dict().get('SYSTEM', {})
        if 'ecutwfc' not in system:
            return (
                'scf.pw.parameters.SYSTEM.ecutwfc is missing: the pseudo family carries no recommended cutoffs, so '
                'set ecutwfc (and ecutrho), or build the inputs with DftWorkChain.get_builder_from_protocol()'
            )
        calculation = parameters.get_dict().get('CONTROL', {}).get('calculation', 'scf')
        if calculation != 'scf':
            return f'scf.pw.parameters.CONTROL.calculation must be "scf" (fixed cells), got {calculation!r}'
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Calcfunctions: every structure and every derived number is made here, so the graph shows where it came from.
# ---------------------------------------------------------------------------------------------------------------------
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
    }


def _split_kwargs(kwargs: dict) -> tuple[dict, dict]:
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
        bridge='fit_equation_of_state',
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
        bridge='fit_elastic_constants',
        from_scale='dft',
        to_scale='md',
        metadata={
            **metadata,
            'strains': [float(s[0, 0]) for s in strains],
            'cubic_symmetry_error_gpa': fit['symmetry_error'],
            'residual_pressure_gpa': fit['residual_pressure'],
        },
    )


# ---------------------------------------------------------------------------------------------------------------------
# The SCF work chain: aiida-quantumespresso's PwBaseWorkChain plus one handler
# ---------------------------------------------------------------------------------------------------------------------
def remote_charge_density(remote_folder: orm.RemoteData) -> str | None:
    """The name of the charge-density file in a pw.x working directory's ``out/aiida.save``, or None.

    pw.x writes it at the end of an SCF and when it stops at ``CONTROL.max_seconds``; a restarted run also finds its
    parent's copy there.  A run killed during its first SCF leaves none.
    """
    save = f'{PwCalculation._OUTPUT_SUBFOLDER}{PwCalculation._PREFIX}.save'
    try:
        names = remote_folder.listdir(save)
    except OSError:  # no such folder, or the remote cannot be reached: do not restart from it
        return None
    return next((name for name in ('charge-density.dat', 'charge-density.hdf5') if name in names), None)


class MultiscalePwBaseWorkChain(PwBaseWorkChain):
    """``PwBaseWorkChain`` that also resubmits a job the scheduler killed at its time limit (exit 120).

    aiida-quantumespresso 5.1 already sets ``CONTROL.max_seconds`` to 95 % of ``max_wallclock_seconds`` so that pw.x
    stops cleanly (exit 400) and ``handle_out_of_walltime`` restarts it in full; that is kept as it is.  When pw.x does
    not stop in time (an SCF iteration longer than the 5 % margin, slow I/O, a ``max_seconds`` set too high) the
    scheduler kills the job, its stdout and XML are incomplete and the parser keeps the scheduler's 120, for which
    ``PwBaseWorkChain`` has no handler: it reruns the same inputs once (the same time limit, so the same kill) and
    gives up with 401.  :meth:`handle_scheduler_out_of_walltime` fixes that; ``max_iterations`` bounds it.
    """

    #: Factor applied to ``max_wallclock_seconds`` (and to an explicit ``CONTROL.max_seconds``) per scheduler kill.
    walltime_factor = 2

    @process_handler(priority=575, exit_codes=[PwCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME])
    def handle_scheduler_out_of_walltime(self, calculation):
        """Resubmit with ``walltime_factor`` times the time, from the charge density when the killed run left one.

        ``CONTROL.max_seconds`` is scaled by the same factor (``prepare_process`` sets it only when it is absent, so
        after the first run it would otherwise stay at the old limit).  An SCF restarts from the charge density in
        the killed run's ``out/aiida.save`` (its wavefunction and mixing files may have been cut mid-write, the
        density is only written whole) or else from scratch; other calculation types keep their ``parent_folder``.
        """
        options = self.ctx.inputs.metadata.options
        seconds = options.get('max_wallclock_seconds') or calculation.get_option('max_wallclock_seconds')
        if not seconds:
            # Not a time limit we set: nothing to raise.  Let PwBaseWorkChain's unhandled-failure logic decide.
            return None
        options['max_wallclock_seconds'] = int(seconds * self.walltime_factor)
        control = self.ctx.inputs.parameters.setdefault('CONTROL', {})
        if 'max_seconds' in control:
            control['max_seconds'] = control['max_seconds'] * self.walltime_factor
        action = f'max_wallclock_seconds {seconds} -> {options["max_wallclock_seconds"]}'
        if control.get('calculation', 'scf') == 'scf':
            density = remote_charge_density(calculation.outputs.remote_folder)
            if density:
                self.set_restart_type(RestartType.FROM_CHARGE_DENSITY, calculation.outputs.remote_folder)
                action += f', restarting from the charge density ({density}) the killed run left'
            else:
                self.set_restart_type(RestartType.FROM_SCRATCH)
                action += ', restarting from scratch (the killed run left no charge density)'
        self.report_error_handled(calculation, action)
        return ProcessHandlerReport(True)


# ---------------------------------------------------------------------------------------------------------------------
# The work chain
# ---------------------------------------------------------------------------------------------------------------------
class DftWorkChain(ProtocolMixin, WorkChain):
    """Equation of state and cubic elastic constants of a crystal with Quantum ESPRESSO.

    Every SCF is a :class:`MultiscalePwBaseWorkChain` (aiida-quantumespresso's error handlers restart failed runs,
    also after a time limit; ours adds the scheduler's hard kill), and the SCFs of one stage are
    submitted together and run in parallel.  The EOS grid is re-centred (never extrapolated) until its minimum is
    inside; C11, C12 and C44 come from linear stress-strain fits at the fitted a0, and are checked for Born stability
    and against the EOS bulk modulus before the work chain finishes OK.
    """

    _protocol_file = 'dft'
    _open_paths = ('scf.pw.parameters', 'scf.pw.metadata', 'cutoffs', 'magnetic_elements')

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input(
            'element',
            valid_type=orm.Str,
            required=False,
            validator=validate_element,
            help='Chemical symbol of an element with a monatomic cubic (fcc, bcc, sc) ground state; the '
            'primitive cell is built for it. Give this or `structure`.',
        )
        spec.input(
            'structure',
            valid_type=orm.StructureData,
            required=False,
            validator=validate_structure,
            help='A cubic structure, cube axes along x, y, z, every atom on an inversion centre. Its volume '
            'is only the starting guess of the EOS. Give this or `element`.',
        )
        spec.input(
            'pseudo_family',
            valid_type=orm.Str,
            help='Label of an aiida-pseudo family (e.g. multiscale/lda) holding a pseudopotential for every element.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help='Numerical settings, missing keys take their defaults: eos_points (7), eos_volume_range '
            '(0.06, relative half-width of the volume grid), eos_max_recentre (2), strains (list, '
            'symmetric about 0), bulk_modulus_tolerance (0.05), kpoints_distance (1/A, 2 pi included) '
            'or kpoints_mesh (3 integers, used for every SCF); elastic_kpoints_distance (None: the same mesh) for '
            'a denser mesh of the strained SCFs only; kpoints_convergence (false): refine the elastic '
            "k-mesh by kpoints_refinement_factor (1.25) until C' and C44 change by less than "
            'kpoints_convergence_tolerance (0.05), at most kpoints_max_refinements (2) times.',
        )
        spec.input(
            'clean_workdir',
            valid_type=orm.Bool,
            default=lambda: orm.Bool(False),
            help='Whether to clean the remote folders of all SCFs when the work chain terminates.',
        )
        spec.expose_inputs(
            MultiscalePwBaseWorkChain,
            namespace='scf',
            exclude=_EXCLUDED_SCF_INPUTS,
            namespace_options={
                'help': 'Inputs of the PwBaseWorkChain used for every SCF (structure, '
                'pseudos and k-points are set by this work chain).'
            },
        )
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            while_(cls.should_run_eos)(
                cls.run_eos,
                cls.inspect_eos,
            ),
            cls.run_elastic,
            cls.inspect_elastic,
            while_(cls.should_refine_kpoints)(
                cls.refine_kpoints,
                cls.run_elastic,
                cls.inspect_elastic,
            ),
            cls.results,
        )

        spec.output(
            'eos',
            valid_type=HandoffData,
            help='a0 [angstrom], v0 [angstrom^3 per atom], e0 [eV per atom], bulk_modulus [GPa], '
            'bulk_modulus_derivative [dimensionless], each with the std of the fit; convergence '
            'metadata (cutoffs, k-mesh, smearing, pseudo md5, functional).',
        )
        spec.output(
            'elastic',
            valid_type=HandoffData,
            help='c11, c12, c44 [GPa] with std from the stress-strain fit residuals, and the same metadata.',
        )
        spec.output('structure', valid_type=orm.StructureData, help='The cubic cell at the fitted equilibrium volume.')

        # Unrecoverable: the physics says no (a denser mesh will not make an unstable crystal stable).
        spec.exit_code(
            310,
            'ERROR_BORN_UNSTABLE',
            message='The elastic constants violate Born stability: {violations}. The crystal is not '
            'stable in this structure, or the k-mesh is far too coarse.',
        )
        # Restartable: a child failed beyond its handlers, or the numbers are not converged enough.
        spec.exit_code(
            401,
            'ERROR_SUB_PROCESS_FAILED_EOS',
            message='The EOS SCF PwBaseWorkChain<{pk}> failed with exit status {exit_status}.',
        )
        spec.exit_code(
            402,
            'ERROR_SUB_PROCESS_FAILED_ELASTIC',
            message='The strained SCF PwBaseWorkChain<{pk}> failed with exit status {exit_status}.',
        )
        spec.exit_code(
            403,
            'ERROR_EOS_NOT_BRACKETED',
            message='The EOS minimum is still outside the sampled volumes after {iterations} re-centrings; '
            'widen parameters.eos_volume_range or raise eos_max_recentre.',
        )
        spec.exit_code(
            410,
            'ERROR_BULK_MODULUS_INCONSISTENT',
            message='B from the elastic constants, (C11+2C12)/3 = {b_cij:.2f} GPa, differs from the EOS B0 '
            '= {b0:.2f} GPa by {deviation:.1%} (> {tolerance:.0%}): converge the k-mesh '
            '(kpoints_distance) and cutoffs.',
        )

    # -- protocol ----------------------------------------------------------------------------------------------------
    @classmethod
    def get_builder_from_protocol(
        cls,
        code,
        element: str | None = None,
        structure: orm.StructureData | None = None,
        protocol: str | None = None,
        overrides: t.Mapping | None = None,
        options: t.Mapping | None = None,
        pseudo_family: str = 'multiscale/lda',
        **_,
    ):
        """Return a builder filled from the protocol: pw.x parameters, cutoffs for the elements, k-points, strains.

        :param code: a ``quantumespresso.pw`` code (or its label).
        :param element: chemical symbol (give this or ``structure``).
        :param structure: a cubic ``StructureData`` (give this or ``element``).
        :param protocol: ``fast``, ``moderate`` (default) or ``precise``.
        :param overrides: nested dict merged into the protocol inputs (unknown keys raise; ``None`` removes a key).
        :param options: ``metadata.options`` of every ``PwCalculation``, over the protocol's ``options`` (default: 1
            MPI process, no mpirun); checked by :func:`aiida_multiscale.resources.resolve_options`.
        :param pseudo_family: label of the aiida-pseudo family.
        """
        if isinstance(code, str):
            code = orm.load_code(code)
        if (element is None) == (structure is None):
            raise ValueError('give exactly one of `element` and `structure`')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        elements = [element] if element is not None else _structure_elements(structure)
        natoms = 1 if element is not None else len(structure.sites)

        cutoffs = inputs.pop('cutoffs')
        scale = inputs.pop('cutoff_scale', 1.0)
        ecutwfc = max(cutoffs.get(el, cutoffs['default'])[0] for el in elements) * scale
        ecutrho = max(cutoffs.get(el, cutoffs['default'])[1] for el in elements) * scale
        magnetic = inputs.pop('magnetic_elements', {}) or {}

        pw_parameters = inputs['scf']['pw']['parameters']
        system = pw_parameters.setdefault('SYSTEM', {})
        system.setdefault('ecutwfc', ecutwfc)
        system.setdefault('ecutrho', ecutrho)
        electrons = pw_parameters.setdefault('ELECTRONS', {})
        conv_thr_per_atom = electrons.pop('conv_thr_per_atom', None)
        if conv_thr_per_atom is not None:
            electrons.setdefault('conv_thr', conv_thr_per_atom * natoms)
        moments = {el: magnetic[el] for el in elements if el in magnetic}
        if moments and 'nspin' not in system:
            system['nspin'] = 2
            system['starting_magnetization'] = moments

        from aiida_multiscale.resources import merge_options, resolve_options

        # The protocol's `options`, then scf.pw.metadata.options overrides, then the caller's; checked against the code.
        legacy = inputs['scf']['pw'].get('metadata', {}).get('options')
        metadata_options = resolve_options('dft', code, merge_options(inputs.pop('options', None), legacy), options)

        builder = cls.get_builder()
        if element is not None:
            builder.element = orm.Str(element)
        else:
            builder.structure = structure
        builder.pseudo_family = orm.Str(pseudo_family)
        builder.parameters = orm.Dict({key: value for key, value in inputs['parameters'].items() if value is not None})
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        builder.scf.max_iterations = orm.Int(inputs['scf']['max_iterations'])
        builder.scf.pw.code = code
        builder.scf.pw.parameters = orm.Dict(pw_parameters)
        builder.scf.pw.metadata.options = metadata_options
        return builder

    # -- steps -------------------------------------------------------------------------------------------------------
    def setup(self):
        """Build or take the reference structure, load the pseudos and fix one k-mesh for every SCF."""
        from aiida_quantumespresso.calculations.functions.create_kpoints_from_distance import (
            create_kpoints_from_distance,
        )

        self.ctx.parameters = {
            **DEFAULT_PARAMETERS,
            **(self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}),
        }
        family = _load_family(self.inputs.pseudo_family.value)
        if 'element' in self.inputs:
            pseudo = family.get_pseudo(self.inputs.element.value)
            functional = orm.Str(cubic.guess_functional(pseudo.get_content()))
            reference = create_cubic_structure(
                self.inputs.element, functional, metadata={'call_link_label': 'create_cubic_structure'}
            )
        else:
            reference = self.inputs.structure
        self.ctx.reference = reference
        self.ctx.pseudos = family.get_pseudos(structure=reference)

        # One mesh for every SCF (from the starting cell): a mesh that changed from one volume or strain to the
        # next would put a step into E(V) and sigma(epsilon).
        mesh = self.ctx.parameters['kpoints_mesh']
        if mesh:
            kpoints = orm.KpointsData()
            kpoints.set_kpoints_mesh([int(k) for k in mesh])
            self.ctx.kpoints = kpoints
        else:
            self.ctx.kpoints = create_kpoints_from_distance(
                reference,
                orm.Float(self.ctx.parameters['kpoints_distance']),
                orm.Bool(False),
                metadata={'call_link_label': 'create_kpoints_from_distance'},
            )
        self.report(f'k-point mesh {self.ctx.kpoints.get_kpoints_mesh()[0]} for every SCF')

        points = self.ctx.parameters['eos_points']
        self.ctx.eos_step = 2 * self.ctx.parameters['eos_volume_range'] / (points - 1)
        self.ctx.eos_centre = 0  # grid index of the centre; volume factor of index j is 1 + j * eos_step
        self.ctx.eos_children = {}  # str(grid index) -> pk of the PwBaseWorkChain
        self.ctx.eos_iteration = 0
        self.ctx.eos_done = False
        self.ctx.elastic_kpoints = self.ctx.kpoints
        if self.ctx.parameters['elastic_kpoints_distance']:
            # The shear constants need a far denser mesh than a0 and B0 (FACTS.md): one mesh for every strained SCF.
            self.ctx.elastic_kpoints = create_kpoints_from_distance(
                reference,
                orm.Float(self.ctx.parameters['elastic_kpoints_distance']),
                orm.Bool(False),
                metadata={'call_link_label': 'create_elastic_kpoints_from_distance'},
            )
            self.report(f'k-point mesh {self.ctx.elastic_kpoints.get_kpoints_mesh()[0]} for the strained SCFs')
        self.ctx.elastic_history = []  # elastic handoffs, one per k-mesh

    def _scf_inputs(self, structure: orm.StructureData, label: str, kpoints=None) -> AttributeDict:
        inputs = AttributeDict(self.exposed_inputs(MultiscalePwBaseWorkChain, namespace='scf'))
        inputs.pw.structure = structure
        inputs.pw.pseudos = self.ctx.pseudos
        inputs.kpoints = kpoints or self.ctx.kpoints
        inputs.metadata.call_link_label = label
        return inputs

    def _eos_indices(self) -> list[int]:
        half = (self.ctx.parameters['eos_points'] - 1) // 2
        return list(range(self.ctx.eos_centre - half, self.ctx.eos_centre + half + 1))

    def should_run_eos(self):
        return not self.ctx.eos_done

    def run_eos(self):
        """Submit, all at once, the SCFs of the current volume grid that no earlier grid has already computed."""
        self.ctx.eos_iteration += 1
        missing = [j for j in self._eos_indices() if str(j) not in self.ctx.eos_children]
        factors = [1 + j * self.ctx.eos_step for j in missing]
        if min(factors) <= 0.3:
            return self.exit_codes.ERROR_EOS_NOT_BRACKETED.format(iterations=self.ctx.eos_iteration - 1)
        structures = scale_structure_volumes(
            self.ctx.reference,
            orm.List(factors),
            metadata={'call_link_label': f'scale_volumes_{self.ctx.eos_iteration}'},
        )
        for index, j in enumerate(missing):
            label = f'eos_{"m" if j < 0 else "p"}{abs(j)}'
            node = self.submit(MultiscalePwBaseWorkChain, **self._scf_inputs(structures[f'structure_{index}'], label))
            self.ctx.eos_children[str(j)] = node.pk
            self.to_context(eos_workchains=append_(node))
        self.report(
            f'EOS round {self.ctx.eos_iteration}: submitted {len(missing)} SCFs at V/V_ref = '
            f'{", ".join(f"{f:.4f}" for f in factors)}'
        )
        return None

    def inspect_eos(self):
        """Fit E(V); re-centre the grid when the minimum is not inside, or hand the fit to the calcfunction."""
        children = [orm.load_node(self.ctx.eos_children[str(j)]) for j in self._eos_indices()]
        for child in children:
            if not child.is_finished_ok:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_EOS.format(pk=child.pk, exit_status=child.exit_status)
        natoms = len(self.ctx.reference.sites)
        volumes = [child.inputs.pw.structure.get_cell_volume() / natoms for child in children]
        energies = [child.outputs.output_parameters['energy'] / natoms for child in children]
        try:
            fit = eos_fits.fit_birch_murnaghan(volumes, energies)
        except (RuntimeError, ValueError) as exc:
            self.report(f'Birch-Murnaghan fit failed ({exc}); re-centring towards the lowest energy')
            fit = None
        if fit is not None and fit['bracketed']:
            kwargs = {f'structure_{i}': child.inputs.pw.structure for i, child in enumerate(children)}
            kwargs.update(
                {f'output_parameters_{i}': child.outputs.output_parameters for i, child in enumerate(children)}
            )
            kwargs.update({f'pseudo_{kind}': pseudo for kind, pseudo in self.ctx.pseudos.items()})
            results = fit_equation_of_state(
                self.ctx.reference,
                self.inputs.scf.pw.parameters,
                self.ctx.kpoints,
                self.inputs.pseudo_family,
                **kwargs,
                metadata={'call_link_label': 'fit_equation_of_state'},
            )
            self.out('eos', results['eos'])
            self.out('structure', results['structure'])
            self.ctx.structure_a0 = results['structure']
            self.ctx.eos_done = True
            eos = results['eos']
            self.report(
                f'EOS: a0 = {eos.value("a0"):.4f} A, B0 = {eos.value("bulk_modulus"):.1f} GPa, '
                f"B' = {eos.value('bulk_modulus_derivative'):.2f}"
            )
            return None
        if self.ctx.eos_iteration > self.ctx.parameters['eos_max_recentre']:
            return self.exit_codes.ERROR_EOS_NOT_BRACKETED.format(iterations=self.ctx.eos_iteration - 1)
        shift = eos_fits.recentre_grid(volumes, energies, fit)
        self.ctx.eos_centre += shift
        self.report(f'EOS minimum not inside the sampled volumes: shifting the grid by {shift:+d} steps')
        return None

    def run_elastic(self):
        """Submit, all at once, the SCFs of the strained cells at a0 (on the current elastic k-mesh)."""
        strains = self.ctx.parameters['strains']
        suffix = f'_k{len(self.ctx.elastic_history)}' if self.ctx.elastic_history else ''
        structures = strain_structure(
            self.ctx.structure_a0, orm.List(strains), metadata={'call_link_label': f'strain_structure{suffix}'}
        )
        self.ctx.elastic_children = []
        for index, _ in enumerate(strains):
            label = f'strain{suffix}_{index}'
            inputs = self._scf_inputs(structures[f'structure_{index}'], label, self.ctx.elastic_kpoints)
            node = self.submit(MultiscalePwBaseWorkChain, **inputs)
            self.ctx.elastic_children.append(node.pk)
            self.to_context(elastic_workchains=append_(node))
        mesh = self.ctx.elastic_kpoints.get_kpoints_mesh()[0]
        self.report(f'submitted {len(strains)} strained SCFs on the {mesh} mesh, delta = {strains}')
        return None

    def inspect_elastic(self):
        """Fit C11, C12, C44 of this k-mesh (calcfunction; earlier meshes are inputs, for the convergence record)."""
        children = [orm.load_node(pk) for pk in self.ctx.elastic_children]
        for child in children:
            if not child.is_finished_ok:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED_ELASTIC.format(
                    pk=child.pk, exit_status=child.exit_status
                )
        kwargs = {f'structure_{i}': child.inputs.pw.structure for i, child in enumerate(children)}
        kwargs.update({f'output_trajectory_{i}': child.outputs.output_trajectory for i, child in enumerate(children)})
        kwargs.update({f'pseudo_{kind}': pseudo for kind, pseudo in self.ctx.pseudos.items()})
        kwargs.update({f'previous_{n}': node for n, node in enumerate(self.ctx.elastic_history)})
        suffix = f'_k{len(self.ctx.elastic_history)}' if self.ctx.elastic_history else ''
        elastic = fit_elastic_constants(
            self.ctx.structure_a0,
            self.inputs.scf.pw.parameters,
            self.ctx.elastic_kpoints,
            self.inputs.pseudo_family,
            **kwargs,
            metadata={'call_link_label': f'fit_elastic_constants{suffix}'},
        )
        self.ctx.elastic_history.append(elastic)
        c11, c12, c44 = (elastic.value(name, 'GPa') for name in ('c11', 'c12', 'c44'))
        mesh = self.ctx.elastic_kpoints.get_kpoints_mesh()[0]
        self.report(f'elastic constants on the {mesh} mesh: C11 = {c11:.1f}, C12 = {c12:.1f}, C44 = {c44:.1f} GPa')
        return None

    def _kpoints_change(self) -> float:
        """Largest relative change of C' = (C11-C12)/2 and C44 between the last two k-meshes."""
        (c11_a, c12_a, c44_a), (c11_b, c12_b, c44_b) = (
            [node.value(name, 'GPa') for name in ('c11', 'c12', 'c44')] for node in self.ctx.elastic_history[-2:]
        )
        shear_a, shear_b = (c11_a - c12_a) / 2, (c11_b - c12_b) / 2
        return max(abs(shear_b - shear_a) / abs(shear_b), abs(c44_b - c44_a) / abs(c44_b))

    def should_refine_kpoints(self):
        """With ``kpoints_convergence``: refine until C' and C44 change by less than the tolerance, or give up."""
        parameters = self.ctx.parameters
        if not parameters['kpoints_convergence']:
            return False
        if len(self.ctx.elastic_history) >= 2:
            change = self._kpoints_change()
            if change < parameters['kpoints_convergence_tolerance']:
                self.report(f"k-mesh converged: C' and C44 changed by {change:.1%} on the last refinement")
                return False
            if len(self.ctx.elastic_history) > parameters['kpoints_max_refinements']:
                self.report(
                    f"k-mesh NOT converged after {parameters['kpoints_max_refinements']} refinements: C' or C44 "
                    f'still changed by {change:.1%}; the last mesh is used (see metadata.kpoints_convergence)'
                )
                return False
        return True

    def refine_kpoints(self):
        """Make the elastic k-mesh denser by ``kpoints_refinement_factor`` (a0 is kept: B0 converges much faster)."""
        self.ctx.elastic_kpoints = refine_kpoints_mesh(
            self.ctx.elastic_kpoints,
            orm.Float(self.ctx.parameters['kpoints_refinement_factor']),
            metadata={'call_link_label': f'refine_kpoints_mesh_{len(self.ctx.elastic_history)}'},
        )

    def results(self):
        """Attach the elastic constants of the last k-mesh, then check Born stability and B against the EOS B0."""
        elastic = self.ctx.elastic_history[-1]
        self.out('elastic', elastic)
        return self._check_elastic(elastic, self.outputs['eos'])

    def _check_elastic(self, elastic: HandoffData, eos: HandoffData):
        """Exit codes for an unstable or inconsistent set of elastic constants (None when both checks pass)."""
        c11, c12, c44 = (elastic.value(name, 'GPa') for name in ('c11', 'c12', 'c44'))
        violations = born_stability_violations(c11, c12, c44)
        if violations:
            return self.exit_codes.ERROR_BORN_UNSTABLE.format(violations='; '.join(violations))
        b_cij = bulk_modulus_from_cij(c11, c12)
        b0 = eos.value('bulk_modulus', 'GPa')
        tolerance = self.ctx.parameters['bulk_modulus_tolerance']
        deviation = abs(b_cij - b0) / b0
        if deviation > tolerance:
            return self.exit_codes.ERROR_BULK_MODULUS_INCONSISTENT.format(
                b_cij=b_cij, b0=b0, deviation=deviation, tolerance=tolerance
            )
        return None

    def on_terminated(self):
        """Clean the remote folders of all SCFs if ``clean_workdir`` is set (as aiida-quantumespresso does)."""
        super().on_terminated()
        if not self.inputs.clean_workdir.value:
            return
        cleaned = []
        for called in self.node.called_descendants:
            if isinstance(called, orm.CalcJobNode):
                try:
                    called.outputs.remote_folder._clean()
                    cleaned.append(str(called.pk))
                except (OSError, KeyError):
                    pass
        if cleaned:
            self.report(f'cleaned remote folders of calculations: {" ".join(cleaned)}')

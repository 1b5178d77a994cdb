"""``DftWorkChain``: equation of state and cubic elastic constants of a crystal with Quantum ESPRESSO."""

from __future__ import annotations

import typing as t

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, append_, while_
from aiida_quantumespresso.calculations.functions.create_kpoints_from_distance import create_kpoints_from_distance

from aiida_multiscale.data.handoff import HandoffData
from aiida_multiscale.engines.qe import structures as cubic
from aiida_multiscale.engines.qe.elastic import CUBIC_CONSTANTS, cij_changes, cij_converged
from aiida_multiscale.engines.qe.parameters import pw_parameters
from aiida_multiscale.engines.qe.settings import check_parameters, check_pw_parameters
from aiida_multiscale.physics import eos as eos_fits
from aiida_multiscale.physics.elasticity import born_stability_violations, bulk_modulus_from_cij
from aiida_multiscale.resources import merge_options, resolve_options
from aiida_multiscale.workflows.base.pw import MultiscalePwBaseWorkChain
from aiida_multiscale.workflows.functions.dft import (
    converge_elastic_constants,
    create_cubic_structure,
    fit_elastic_constants,
    fit_equation_of_state,
    fit_kwargs,
    refine_kpoints_mesh,
    scale_structure_volumes,
    strain_structure,
)
from aiida_multiscale.workflows.functions.verification import verify_equation_of_state
from aiida_multiscale.workflows.protocols.utils import ProtocolMixin, load_protocol_file
from aiida_multiscale.workflows.validation import (
    check_cutoffs,
    check_pseudo_family,
    default_pseudo_family,
    fallback_note,
    message_of,
    recommended_cutoffs,
)

__all__ = ('DftWorkChain', 'default_parameters')

_EXCLUDED_SCF_INPUTS = (
    'clean_workdir',
    'pw.structure',
    'pw.pseudos',
    'kpoints',
    'kpoints_distance',
    'kpoints_force_parity',
)

#: The work chain's own exit codes (status, label, message); an SCF's own failures are those of its restart chain.
EXIT_CODES = (
    # Unrecoverable: the physics says no (a denser mesh will not make an unstable crystal stable).
    (310, 'ERROR_BORN_UNSTABLE', 'The elastic constants (GPa) violate Born stability: {violations}. The crystal is not '
     'stable in this structure, or the k-mesh is far too coarse.'),
    # Restartable: a child failed beyond its handlers, or the numbers are not converged enough.
    (401, 'ERROR_SUB_PROCESS_FAILED_EOS', 'The EOS SCF PwBaseWorkChain<{pk}> failed with exit status {exit_status}.'),
    (402, 'ERROR_SUB_PROCESS_FAILED_ELASTIC',
     'The strained SCF PwBaseWorkChain<{pk}> failed with exit status {exit_status}.'),
    (403, 'ERROR_EOS_NOT_BRACKETED', 'The EOS minimum is still outside the sampled volumes after {iterations} '
     're-centrings; widen parameters.eos_volume_range or raise eos_max_recentre.'),
    (410, 'ERROR_BULK_MODULUS_INCONSISTENT', 'B from the elastic constants, (C11+2C12)/3 = {b_cij:.2f} GPa, differs '
     'from the EOS B0 = {b0:.2f} GPa by {deviation:.1%} (> {tolerance:.0%}): converge the k-mesh (kpoints_distance) '
     'and cutoffs.'),
)  # fmt: skip


def default_parameters() -> dict:
    """The defaults of the ``parameters`` input: ``default_inputs.parameters`` of ``protocols/dft.yaml`` (a copy)."""
    return load_protocol_file('dft')['default_inputs']['parameters']


def _parameters_help() -> str:
    """Help of the ``parameters`` port, with the defaults read from the protocol file."""
    return (
        'Numerical settings, missing keys take their defaults: eos_points ({eos_points}), eos_volume_range '
        '({eos_volume_range}, relative half-width of the volume grid), eos_max_recentre ({eos_max_recentre}), strains '
        '({strains}, symmetric about 0), bulk_modulus_tolerance ({bulk_modulus_tolerance}), kpoints_distance '
        '({kpoints_distance} 1/A, 2 pi included) or kpoints_mesh (3 integers, used for every SCF); '
        'elastic_kpoints_distance ({elastic_kpoints_distance}: the same mesh) for a denser mesh of the strained SCFs '
        'only; kpoints_convergence ({kpoints_convergence}): refine the elastic k-mesh by kpoints_refinement_factor '
        '({kpoints_refinement_factor}) until each of C11, C12 and C44 changes by less than '
        'kpoints_convergence_tolerance_gpa ({kpoints_convergence_tolerance_gpa} GPa) or kpoints_convergence_tolerance '
        '({kpoints_convergence_tolerance}, relative), whichever is larger, at most kpoints_max_refinements '
        '({kpoints_max_refinements}) times; without it, kpoints_error_estimate ({kpoints_error_estimate}) runs the '
        'strained SCFs once more on a mesh kpoints_refinement_factor times coarser, and the change goes into the std.'
    ).format(**default_parameters())


# -- validators: bad input is refused before anything is submitted, with a message that says how to fix it -------------
def validate_parameters(node, _=None):
    """Check the ``parameters`` Dict: known keys, sensible EOS grid and a strain set symmetric about zero."""
    return None if node is None else message_of(check_parameters, node.get_dict(), default_parameters())


def validate_element(node, _=None):
    """The element must be a chemical symbol with a monatomic cubic ground state."""
    return None if node is None else message_of(cubic.reference_lattice, node.value, prefix='element: ')


def validate_structure(node, _=None):
    """The structure must be cubic, with the cube axes along x, y, z and every atom on an inversion centre."""
    if node is None:
        return None
    atoms = node.get_ase()
    arrays = (atoms.cell.array, atoms.get_scaled_positions(), atoms.numbers)
    return message_of(cubic.check_cubic_structure, *arrays, prefix='structure: ')


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

    elements = [inputs['element'].value] if has_element else sorted(inputs['structure'].get_symbols_set())
    if message := check_pseudo_family(elements, inputs['pseudo_family'].value):
        return message

    parameters = inputs.get('scf', {}).get('pw', {}).get('parameters')
    parameters = parameters.get_dict() if parameters is not None else None
    # No cutoffs given and none recommended by the family: say both fixes, before pw.x is ever run.
    if parameters is not None and (message := check_cutoffs(elements, inputs['pseudo_family'].value, parameters)):
        return message
    return message_of(check_pw_parameters, parameters, prefix='scf.pw.parameters.')


class DftWorkChain(ProtocolMixin, WorkChain):
    """Equation of state and cubic elastic constants of a crystal with Quantum ESPRESSO.

    Every SCF is a :class:`MultiscalePwBaseWorkChain` (aiida-quantumespresso's error handlers restart failed runs,
    also after a time limit; ours adds the scheduler's hard kill), and the SCFs of one stage are
    submitted together and run in parallel.  The EOS grid is re-centred (never extrapolated) until its minimum is
    inside; C11, C12 and C44 come from linear stress-strain fits at the fitted a0, and are checked for Born stability
    and against the EOS bulk modulus before the work chain finishes OK.
    """

    _protocol_file = 'dft'
    _open_paths = ('scf.pw.parameters', 'scf.pw.metadata', 'magnetic_elements')

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
            help='Label of an aiida-pseudo family holding a pseudopotential for every element: a local one made by '
            '`aiida-multiscale setup` (multiscale/pbe, multiscale/lda) or one installed by `aiida-pseudo install` '
            '(SSSP, PseudoDojo). get_builder_from_protocol takes the cutoffs it recommends.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            required=False,
            validator=validate_parameters,
            help=_parameters_help(),
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
                'help': 'Inputs of the MultiscalePwBaseWorkChain of every SCF, max_iterations and '
                'max_wallclock_seconds_limit included (structure, pseudos and k-points are set by this work chain).'
            },
        )
        spec.inputs.validator = validate_inputs

        spec.outline(
            cls.setup,
            while_(cls.should_run_eos)(cls.run_eos, cls.inspect_eos),
            cls.run_elastic,
            cls.inspect_elastic,
            while_(cls.should_refine_kpoints)(cls.refine_kpoints, cls.run_elastic, cls.inspect_elastic),
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
            help='c11, c12, c44 [GPa] of the densest k-mesh; std: the stress-strain fit std and the change from the '
            'previous k-mesh in quadrature (the note says which, and whether the mesh converged); the same metadata, '
            'with kpoints_convergence (every mesh), kpoints_converged and kpoints_tolerance.',
        )
        spec.output(
            'elastic_convergence',
            valid_type=orm.Dict,
            help='The k-mesh history of the elastic constants: every mesh with C11, C12, C44 [GPa] and their fit std, '
            'the change [GPa] from the mesh before and the tolerance, whether it converged, and the fixed smearing.',
        )
        spec.output('structure', valid_type=orm.StructureData, help='The cubic cell at the fitted equilibrium volume.')
        spec.output(
            'verification',
            valid_type=HandoffData,
            required=False,
            help='Only for an `element`: the EOS against the all-electron PBE fcc reference of Bosoni et al., Nat. '
            'Rev. Phys. 6, 45 (2024): nu, epsilon, v0/b0/b1_relative_difference [dimensionless]. metadata.status '
            "'compared', or 'no_reference' (no quantities) with metadata.reason: LDA, spin-polarised, not fcc.",
        )

        for status, label, message in EXIT_CODES:
            spec.exit_code(status, label, message=message)

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
        pseudo_family: str | None = None,
        **_,
    ):
        """Return a builder filled from the protocol: pw.x parameters, cutoffs for the elements, k-points, strains.

        The cutoffs are the family's recommended ones (its default stringency, the largest over the elements) times
        the protocol's ``cutoff_scale``; ``SYSTEM.ecutwfc/ecutrho`` in ``overrides`` win.

        :param code: a ``quantumespresso.pw`` code (or its label).
        :param element: chemical symbol (give this or ``structure``).
        :param structure: a cubic ``StructureData`` (give this or ``element``).
        :param protocol: a protocol of ``protocols/dft.yaml`` (None: its ``default_protocol``).
        :param overrides: nested dict merged into the protocol inputs (unknown keys raise; ``None`` removes a key).
        :param options: ``metadata.options`` of every ``PwCalculation``, over the protocol's ``options``; checked by
            :func:`aiida_multiscale.resources.resolve_options`.
        :param pseudo_family: label of an aiida-pseudo family (default: ``multiscale/pbe`` where it has every element,
            else ``multiscale/lda``; the fallback is stated in ``metadata.description``).
        :raises ValueError: for bad input, e.g. neither cutoffs in ``overrides`` nor any recommended by the family.
        """
        if isinstance(code, str):
            code = orm.load_code(code)
        if (element is None) == (structure is None):
            raise ValueError('give exactly one of `element` and `structure`')
        inputs = cls.get_protocol_inputs(protocol, overrides)
        elements = [element] if element is not None else sorted(structure.get_symbols_set())
        natoms = 1 if element is not None else len(structure.sites)

        if pseudo_family is None:
            pseudo_family = default_pseudo_family(elements)
        # A family without the elements is left to the port validator, which names what the family has.
        usable = check_pseudo_family(elements, pseudo_family) is None
        recommended = recommended_cutoffs(pseudo_family, elements) if usable else None
        try:
            parameters = pw_parameters(
                inputs['scf']['pw']['parameters'],
                elements,
                natoms,
                recommended[:2] if recommended else None,
                inputs.pop('cutoff_scale', 1.0),
                inputs.pop('magnetic_elements', None),
            )
        except ValueError as exc:
            if usable:
                raise ValueError(f'pseudo_family {pseudo_family!r}: {exc}') from exc
            parameters = dict(inputs['scf']['pw']['parameters'])
        # The protocol's `options`, then scf.pw.metadata.options overrides, then the caller's; checked against the code.
        legacy = inputs['scf']['pw'].get('metadata', {}).get('options')
        metadata_options = resolve_options('dft', code, merge_options(inputs.pop('options', None), legacy), options)

        builder = cls.get_builder()
        if element is not None:
            builder.element = orm.Str(element)
        else:
            builder.structure = structure
        builder.pseudo_family = orm.Str(pseudo_family)
        if note := fallback_note(elements, pseudo_family):
            builder.metadata.description = note
        builder.parameters = orm.Dict({key: value for key, value in inputs['parameters'].items() if value is not None})
        builder.clean_workdir = orm.Bool(inputs['clean_workdir'])
        builder.scf.max_iterations = orm.Int(inputs['scf']['max_iterations'])
        builder.scf.pw.code = code
        builder.scf.pw.parameters = orm.Dict(parameters)
        builder.scf.pw.metadata.options = metadata_options
        return builder

    # -- steps -------------------------------------------------------------------------------------------------------
    def setup(self):
        """Build or take the reference structure, load the pseudos and fix one k-mesh for every SCF."""
        self.ctx.parameters = {
            **default_parameters(),
            **(self.inputs.parameters.get_dict() if 'parameters' in self.inputs else {}),
        }
        family = orm.Group.collection.get(label=self.inputs.pseudo_family.value)
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
            self.ctx.kpoints = orm.KpointsData()
            self.ctx.kpoints.set_kpoints_mesh([int(k) for k in mesh])
        else:
            self.ctx.kpoints = self._kpoints_from_distance('kpoints_distance', 'create_kpoints_from_distance')
        self.report(f'k-point mesh {self.ctx.kpoints.get_kpoints_mesh()[0]} for every SCF')

        points = self.ctx.parameters['eos_points']
        self.ctx.eos_step = 2 * self.ctx.parameters['eos_volume_range'] / (points - 1)
        self.ctx.eos_centre = 0  # grid index of the centre; volume factor of index j is 1 + j * eos_step
        self.ctx.eos_children = {}  # str(grid index) -> pk of the PwBaseWorkChain
        self.ctx.eos_iteration = 0
        self.ctx.eos_done = False
        self.ctx.elastic_kpoints = self.ctx.kpoints
        if self.ctx.parameters['elastic_kpoints_distance']:
            # The shear constants need a far denser mesh than a0 and B0: one mesh for every strained SCF.
            self.ctx.elastic_kpoints = self._kpoints_from_distance(
                'elastic_kpoints_distance', 'create_elastic_kpoints_from_distance'
            )
            self.report(f'k-point mesh {self.ctx.elastic_kpoints.get_kpoints_mesh()[0]} for the strained SCFs')
        self.ctx.elastic_history = []  # fit_elastic_constants handoffs, one per k-mesh, coarsest first
        self.ctx.strained_structures = None  # made once, at a0: every k-mesh computes the same cells

    def _kpoints_from_distance(self, key: str, label: str) -> orm.KpointsData:
        """The mesh for the ``parameters`` distance ``key`` on the starting cell, made by aiida-quantumespresso."""
        distance, parity = orm.Float(self.ctx.parameters[key]), orm.Bool(False)
        return create_kpoints_from_distance(self.ctx.reference, distance, parity, metadata={'call_link_label': label})

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

    def _verify_eos(self, eos: HandoffData) -> None:
        """Compare the EOS with the all-electron reference (the node says so when there is none on the same footing)."""
        verification = verify_equation_of_state(
            eos, self.inputs.element, metadata={'call_link_label': 'verify_equation_of_state'}
        )
        self.out('verification', verification)
        if 'nu' in verification:
            agreement = verification.metadata['agreement']
            self.report(
                f'verification against the all-electron PBE reference: nu = {verification.value("nu"):.3f} '
                f'({agreement["nu"]}), epsilon = {verification.value("epsilon"):.3f} ({agreement["epsilon"]})'
            )
        else:
            self.report(f'no verification against the all-electron reference: {verification.metadata["reason"]}')

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
            results = fit_equation_of_state(
                self.ctx.reference,
                self.inputs.scf.pw.parameters,
                self.ctx.kpoints,
                self.inputs.pseudo_family,
                **fit_kwargs(children, 'output_parameters', self.ctx.pseudos),
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
            if 'element' in self.inputs:
                self._verify_eos(eos)
            return None
        if self.ctx.eos_iteration > self.ctx.parameters['eos_max_recentre']:
            return self.exit_codes.ERROR_EOS_NOT_BRACKETED.format(iterations=self.ctx.eos_iteration - 1)
        shift = eos_fits.recentre_grid(volumes, energies, fit)
        self.ctx.eos_centre += shift
        self.report(f'EOS minimum not inside the sampled volumes: shifting the grid by {shift:+d} steps')
        return None

    def _kpoints_mode(self) -> str:
        """``refine`` (the convergence loop), ``estimate`` (one coarser mesh, no loop) or ``none``."""
        if self.ctx.parameters['kpoints_convergence']:
            return 'refine'
        return 'estimate' if self.ctx.parameters['kpoints_error_estimate'] else 'none'

    def run_elastic(self):
        """Submit, all at once, the SCFs of the strained cells at a0 on the current elastic k-mesh.

        In ``estimate`` mode the first round also submits the same cells on a mesh ``kpoints_refinement_factor`` times
        coarser, in parallel: the change between the two meshes is the k-point error the handoff's std carries.  A
        coarser mesh rather than a denser one, because it costs about half as much (fcc Al: 20^3 against 24^3) and
        it is the same measure the loop uses (the change from the previous, coarser mesh to the last one).
        """
        strains = self.ctx.parameters['strains']
        if self.ctx.strained_structures is None:
            self.ctx.strained_structures = strain_structure(
                self.ctx.structure_a0, orm.List(strains), metadata={'call_link_label': 'strain_structure'}
            )
        meshes = [self.ctx.elastic_kpoints]
        if not self.ctx.elastic_history and self._kpoints_mode() == 'estimate':
            coarser = refine_kpoints_mesh(
                self.ctx.elastic_kpoints,
                orm.Float(1 / self.ctx.parameters['kpoints_refinement_factor']),
                metadata={'call_link_label': 'coarsen_kpoints_mesh'},
            )
            meshes.insert(0, coarser)
        self.ctx.elastic_rounds = []  # (kpoints, [pk of each strained SCF]) per mesh of this round, coarsest first
        for kpoints in meshes:
            index = len(self.ctx.elastic_history) + len(self.ctx.elastic_rounds)
            prefix = f'strain_k{index}' if index else 'strain'
            pks = []
            for number, _ in enumerate(strains):
                structure = self.ctx.strained_structures[f'structure_{number}']
                node = self.submit(
                    MultiscalePwBaseWorkChain, **self._scf_inputs(structure, f'{prefix}_{number}', kpoints)
                )
                pks.append(node.pk)
                self.to_context(elastic_workchains=append_(node))
            self.ctx.elastic_rounds.append([kpoints, pks])
        labels = ' and '.join(str(kpoints.get_kpoints_mesh()[0]) for kpoints, _ in self.ctx.elastic_rounds)
        self.report(f'submitted {len(strains)} strained SCFs on the {labels} mesh, delta = {strains}')
        return None

    def inspect_elastic(self):
        """Fit C11, C12, C44 on each mesh of this round (one calcfunction per mesh, kept as the mesh's record)."""
        for kpoints, pks in self.ctx.elastic_rounds:
            children = [orm.load_node(pk) for pk in pks]
            for child in children:
                if not child.is_finished_ok:
                    return self.exit_codes.ERROR_SUB_PROCESS_FAILED_ELASTIC.format(
                        pk=child.pk, exit_status=child.exit_status
                    )
            index = len(self.ctx.elastic_history)
            elastic = fit_elastic_constants(
                self.ctx.structure_a0,
                self.inputs.scf.pw.parameters,
                kpoints,
                self.inputs.pseudo_family,
                **fit_kwargs(children, 'output_trajectory', self.ctx.pseudos),
                metadata={'call_link_label': f'fit_elastic_constants_k{index}' if index else 'fit_elastic_constants'},
            )
            self.ctx.elastic_history.append(elastic)
            c11, c12, c44 = (elastic.value(name, 'GPa') for name in CUBIC_CONSTANTS)
            mesh = kpoints.get_kpoints_mesh()[0]
            self.report(f'elastic constants on the {mesh} mesh: C11 = {c11:.1f}, C12 = {c12:.1f}, C44 = {c44:.1f} GPa')
        return None

    def _last_two(self):
        return ([node.value(name, 'GPa') for name in CUBIC_CONSTANTS] for node in self.ctx.elastic_history[-2:])

    def should_refine_kpoints(self):
        """In ``refine`` mode: refine until C11, C12 and C44 each change by less than the tolerance, or give up."""
        parameters = self.ctx.parameters
        if self._kpoints_mode() != 'refine':
            return False
        if len(self.ctx.elastic_history) < 2:
            return True
        previous, current = self._last_two()
        gpa, relative = parameters['kpoints_convergence_tolerance_gpa'], parameters['kpoints_convergence_tolerance']
        changes = ', '.join(f'{name.upper()} {value:.2f}' for name, value in cij_changes(previous, current).items())
        if cij_converged(previous, current, gpa, relative):
            self.report(f'k-mesh converged: changes on the last refinement (GPa) {changes}')
            return False
        refinements = len(self.ctx.elastic_history) - 1
        if refinements >= parameters['kpoints_max_refinements']:
            self.report(
                f'k-mesh NOT converged after {refinements} refinements: changes on the last one (GPa) {changes}, '
                f'tolerance {gpa:g} GPa or {relative:.0%}; the last mesh is used and its std carries the last change'
            )
            return False
        self.report(f'k-mesh not converged yet: changes (GPa) {changes}; refining')
        return True

    def refine_kpoints(self):
        """Make the elastic k-mesh denser by ``kpoints_refinement_factor`` (a0 is kept: B0 converges much faster)."""
        self.ctx.elastic_kpoints = refine_kpoints_mesh(
            self.ctx.elastic_kpoints,
            orm.Float(self.ctx.parameters['kpoints_refinement_factor']),
            metadata={'call_link_label': f'refine_kpoints_mesh_{len(self.ctx.elastic_history)}'},
        )

    def results(self):
        """Attach the elastic constants of the last k-mesh with the k-mesh history, then check Born and B vs B0."""
        parameters = self.ctx.parameters
        settings = {
            'mode': self._kpoints_mode(),
            'tolerance': {
                'gpa': parameters['kpoints_convergence_tolerance_gpa'],
                'relative': parameters['kpoints_convergence_tolerance'],
            },
            'max_refinements': parameters['kpoints_max_refinements'],
            'refinement_factor': parameters['kpoints_refinement_factor'],
        }
        results = converge_elastic_constants(
            orm.Dict(settings),
            **{f'mesh_{index}': node for index, node in enumerate(self.ctx.elastic_history)},
            metadata={'call_link_label': 'converge_elastic_constants'},
        )
        elastic = results['elastic']
        self.out('elastic', elastic)
        self.out('elastic_convergence', results['elastic_convergence'])
        self.report(results['elastic_convergence']['note'])
        c11, c12, c44 = (elastic.value(name, 'GPa') for name in CUBIC_CONSTANTS)
        violations = born_stability_violations(c11, c12, c44)
        if violations:
            return self.exit_codes.ERROR_BORN_UNSTABLE.format(violations='; '.join(violations))
        b_cij = bulk_modulus_from_cij(c11, c12)
        b0 = self.outputs['eos'].value('bulk_modulus', 'GPa')
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

"""``CutoffsConvergenceWorkChain``: the plane-wave cutoffs at which one pseudopotential's energy and pressure converge.

The local pseudopotential families carry recommended cutoffs that this work chain measured, so that the DFT rung
never runs on a guessed cutoff: one SCF of the element's reference cubic cell per ecutwfc of a series (all in
parallel, each a :class:`MultiscalePwBaseWorkChain`), ecutrho = dual x ecutwfc with the dual from the UPF header.
The converged cutoff is the lowest one from which the total energy per atom and the pressure stay within the
criteria of their values at the highest cutoff.  The cutoff error comes from the core region of the pseudopotential
and is insensitive to the k-mesh, so a small mesh (6^3 by default) measures it at a fraction of the rung's cost.
"""

from __future__ import annotations

import datetime

import numpy as np
from aiida import orm
from aiida.engine import WorkChain, calcfunction

from aiida_multiscale.engines.qe import cutoffs as cutoff_rules
from aiida_multiscale.engines.qe import structures as cubic
from aiida_multiscale.engines.qe.parameters import pw_parameters
from aiida_multiscale.workflows.base.pw import MultiscalePwBaseWorkChain
from aiida_multiscale.workflows.functions.dft import create_cubic_structure
from aiida_multiscale.workflows.protocols.utils import load_protocol_file
from aiida_multiscale.workflows.validation import message_of

__all__ = ('CutoffsConvergenceWorkChain', 'analyse_cutoffs_convergence')

_EXCLUDED_SCF_INPUTS = ('clean_workdir', 'pw.structure', 'pw.pseudos', 'kpoints', 'kpoints_distance',
                        'kpoints_force_parity')  # fmt: skip


@calcfunction
def analyse_cutoffs_convergence(criteria: orm.Dict, series: orm.Dict, **kwargs) -> dict:
    """The history of the convergence run (every cutoff with E per atom and P, the criteria, the chosen cutoffs).

    Returns ``history`` and, when converged, ``ecutwfc`` and ``ecutrho`` (Float, Ry).

    ``series``: element, pseudopotential (filename, md5, type), dual, k-mesh, smearing; ``kwargs``:
    ``output_parameters_<i>`` and ``output_trajectory_<i>`` of the SCF at the i-th cutoff (increasing order).  P is
    a third of the trace of pw.x's stress (pw.x's sign: positive under compression).
    """
    count = len(series['ecutwfc'])
    energies, pressures, version = [], [], None
    for index in range(count):
        parameters = kwargs[f'output_parameters_{index}']
        stress = np.asarray(kwargs[f'output_trajectory_{index}'].get_array('stress'))[-1]
        energies.append(parameters['energy'] / series['natoms'])
        pressures.append(float(np.trace(stress)) / 3)
        version = parameters.get('creator_version', version)
    e_tol, p_tol = criteria['energy_per_atom_mev'], criteria['pressure_gpa']
    energies_mev = [1000 * e for e in energies]
    index = cutoff_rules.converged_index(energies_mev, pressures, e_tol, p_tol)
    history = {
        **series.get_dict(),
        'criteria': criteria.get_dict(),
        'criteria_text': f'|E - E(highest)| <= {e_tol:g} meV/atom and |P - P(highest)| <= {p_tol:g} GPa at every '
        'cutoff from the chosen one up',
        'energy_per_atom_ev': energies,
        'energy_change_mev_per_atom': [e - energies_mev[-1] for e in energies_mev],
        'pressure_gpa': pressures,
        'pressure_change_gpa': [p - pressures[-1] for p in pressures],
        'converged': index is not None,
        'ecutwfc_converged': None if index is None else series['ecutwfc'][index],
        'ecutrho_converged': None if index is None else series['ecutrho'][index],
        'code_version': f'pw.x {version}' if version else 'pw.x',
        'date': datetime.date.today().isoformat(),
    }
    results = {'history': orm.Dict(history)}
    if index is not None:
        results.update(ecutwfc=orm.Float(series['ecutwfc'][index]), ecutrho=orm.Float(series['ecutrho'][index]))
    return results


def validate_ecutwfc(node, _=None):
    """At least three distinct cutoffs > 0 (Ry): the highest is the reference, two below it can show convergence."""
    if node is None:
        return None
    values = node.get_list()
    if len(values) < 3 or len(set(values)) != len(values) or any(not isinstance(v, (int, float)) or v <= 0
                                                                  for v in values):  # fmt: skip
        return f'ecutwfc: give at least three distinct cutoffs > 0 Ry, e.g. [25, 30, 40, 60], got {values}'
    return None


def validate_inputs(inputs, _=None):
    """The element has a cubic reference cell and the pseudopotential is for it, with a type its header names."""
    element = inputs['element'].value
    if message := message_of(cubic.reference_lattice, element, prefix='element: '):
        return message
    pseudo = inputs['pseudo']
    if pseudo.element != element:
        return f'pseudo: the pseudopotential {pseudo.filename!r} is for {pseudo.element}, not {element}'
    if 'dual' not in inputs and (message := message_of(cutoff_rules.pseudo_type, pseudo.get_content())):
        return f'pseudo {pseudo.filename!r}: {message}; give `dual` (ecutrho/ecutwfc) explicitly'
    tolerances = inputs.get('criteria')
    if tolerances is not None:
        values = tolerances.get_dict()
        if set(values) != set(cutoff_rules.CRITERIA) or any(not v > 0 for v in values.values()):
            return f'criteria: give both of {sorted(cutoff_rules.CRITERIA)} as numbers > 0, got {values}'
    return None


class CutoffsConvergenceWorkChain(WorkChain):
    """Converge ecutwfc (and ecutrho = dual x ecutwfc) of one pseudopotential on its element's cubic cell."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input('element', valid_type=orm.Str, help='Chemical symbol of an element with a cubic ground state.')
        spec.input(
            'pseudo',
            valid_type=orm.Data,
            help='The UpfData (aiida-pseudo `pseudo.upf`) of the element whose cutoffs are converged.',
        )
        spec.input(
            'ecutwfc',
            valid_type=orm.List,
            default=lambda: orm.List(list(cutoff_rules.DEFAULT_ECUTWFC_SERIES)),
            validator=validate_ecutwfc,
            help='The wavefunction cutoffs (Ry) of the series; the highest is the reference of the criteria.',
        )
        spec.input(
            'dual',
            valid_type=orm.Float,
            required=False,
            help='ecutrho / ecutwfc; default from the UPF header: 4 for norm-conserving, 8 for ultrasoft and PAW.',
        )
        spec.input(
            'kpoints_mesh',
            valid_type=orm.List,
            default=lambda: orm.List([6, 6, 6]),
            help='Monkhorst-Pack mesh of every SCF; the cutoff error hardly depends on it, so keep it small.',
        )
        spec.input(
            'criteria',
            valid_type=orm.Dict,
            default=lambda: orm.Dict(dict(cutoff_rules.CRITERIA)),
            help='energy_per_atom_mev and pressure_gpa: the largest change from the highest cutoff accepted at '
            'every cutoff from the chosen one up.',
        )
        spec.expose_inputs(
            MultiscalePwBaseWorkChain,
            namespace='scf',
            exclude=_EXCLUDED_SCF_INPUTS,
            namespace_options={
                'help': 'Inputs of the MultiscalePwBaseWorkChain of every SCF (code, options, pw.x parameters: '
                "get_builder() puts the DFT rung's protocol ones, smearing and threshold); each SCF adds its cutoffs, "
                'ELECTRONS.conv_thr_per_atom becomes conv_thr, and magnetic elements get nspin = 2.'
            },
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, cls.run_scfs, cls.results)
        spec.output(
            'history',
            valid_type=orm.Dict,
            help='Every cutoff with E per atom and P, their changes from the highest cutoff, the criteria, the chosen '
            'ecutwfc/ecutrho (None if not converged), the pseudopotential, k-mesh, smearing and pw.x version.',
        )
        spec.output('ecutwfc', valid_type=orm.Float, required=False, help='The converged ecutwfc (Ry).')
        spec.output('ecutrho', valid_type=orm.Float, required=False, help='The converged ecutrho (Ry).')
        spec.exit_code(
            401, 'ERROR_SUB_PROCESS_FAILED', message='The SCF PwBaseWorkChain<{pk}> at ecutwfc = {ecutwfc} Ry failed.'
        )
        spec.exit_code(
            410,
            'ERROR_NOT_CONVERGED',
            message='Only the highest cutoff meets the criteria: the series does not show convergence; extend '
            '`ecutwfc` to higher cutoffs (see the `history` output).',
        )

    @classmethod
    def get_builder(cls, code=None, element: str | None = None, pseudo=None, **kwargs):  # noqa: D417
        """A builder with the DFT rung's protocol settings for the SCFs, when ``code``, ``element`` and ``pseudo``.

        ``kwargs`` may hold ``ecutwfc`` (list), ``kpoints_mesh`` (int or 3 ints), ``options`` (metadata.options).
        """
        builder = super().get_builder()
        if code is None:
            return builder
        protocol = load_protocol_file('dft')['default_inputs']
        builder.element = orm.Str(element)
        builder.pseudo = pseudo
        if kwargs.get('ecutwfc'):
            builder.ecutwfc = orm.List(sorted(float(e) for e in kwargs['ecutwfc']))
        mesh = kwargs.get('kpoints_mesh')
        if mesh is not None:
            builder.kpoints_mesh = orm.List([int(mesh)] * 3 if isinstance(mesh, int) else [int(k) for k in mesh])
        builder.scf.pw.code = code
        # The rung's SCF settings (smearing, threshold per atom); the cutoffs are added per SCF.
        builder.scf.pw.parameters = orm.Dict(protocol['scf']['pw']['parameters'])
        builder.scf.max_iterations = orm.Int(protocol['scf']['max_iterations'])
        options = dict(protocol['options'])
        options.update(kwargs.get('options') or {})
        builder.scf.pw.metadata.options = options
        builder.metadata.label = f'cutoffs: {element} {getattr(pseudo, "filename", "")}'
        return builder

    def setup(self):
        """The reference cubic cell of the element (a_exp scaled for the functional), the k-mesh and the dual."""
        pseudo = self.inputs.pseudo
        content = pseudo.get_content()
        functional = orm.Str(cubic.guess_functional(content))
        self.ctx.structure = create_cubic_structure(
            self.inputs.element, functional, metadata={'call_link_label': 'create_cubic_structure'}
        )
        self.ctx.kpoints = orm.KpointsData()
        self.ctx.kpoints.set_kpoints_mesh([int(k) for k in self.inputs.kpoints_mesh.get_list()])
        self.ctx.kind = cutoff_rules.pseudo_type(content) if 'dual' not in self.inputs else 'given'
        self.ctx.dual = self.inputs.dual.value if 'dual' in self.inputs else cutoff_rules.DUALS[self.ctx.kind]
        self.ctx.ecutwfc = sorted(float(e) for e in self.inputs.ecutwfc.get_list())

    def run_scfs(self):
        """Submit one SCF per cutoff, all at once: they are independent."""
        magnetic = load_protocol_file('dft')['default_inputs'].get('magnetic_elements')
        self.ctx.children = []
        for ecutwfc in self.ctx.ecutwfc:
            given = {'SYSTEM': {'ecutwfc': ecutwfc, 'ecutrho': ecutwfc * self.ctx.dual}}
            base = self.inputs.scf.pw.parameters.get_dict()
            merged = {name: {**base.get(name, {}), **given.get(name, {})} for name in {*base, *given}}
            parameters = pw_parameters(
                merged, [self.inputs.element.value], len(self.ctx.structure.sites), None, 1.0, magnetic
            )
            inputs = self.exposed_inputs(MultiscalePwBaseWorkChain, namespace='scf')
            inputs['pw']['structure'] = self.ctx.structure
            inputs['pw']['pseudos'] = {self.ctx.structure.sites[0].kind_name: self.inputs.pseudo}
            inputs['pw']['parameters'] = orm.Dict(parameters)
            inputs['kpoints'] = self.ctx.kpoints
            inputs['metadata'] = {'call_link_label': f'scf_ecut_{ecutwfc:g}'.replace('.', 'p')}
            node = self.submit(MultiscalePwBaseWorkChain, **inputs)
            self.ctx.children.append(node.pk)
            self.to_context(**{f'scf_{len(self.ctx.children)}': node})
        self.report(
            f'submitted {len(self.ctx.ecutwfc)} SCFs at ecutwfc = {self.ctx.ecutwfc} Ry, dual {self.ctx.dual:g}'
        )

    def results(self):
        """Store the history; output the converged cutoffs, or exit 410 when only the highest one qualifies."""
        children = [orm.load_node(pk) for pk in self.ctx.children]
        for ecutwfc, child in zip(self.ctx.ecutwfc, children):
            if not child.is_finished_ok:
                return self.exit_codes.ERROR_SUB_PROCESS_FAILED.format(pk=child.pk, ecutwfc=ecutwfc)
        system = children[0].inputs.pw.parameters['SYSTEM']
        pseudo = self.inputs.pseudo
        series = {
            'element': self.inputs.element.value,
            'pseudo_filename': pseudo.filename,
            'pseudo_md5': pseudo.md5,
            'pseudo_type': self.ctx.kind,
            'dual': self.ctx.dual,
            'natoms': len(self.ctx.structure.sites),
            'structure_cell_volume_a3': self.ctx.structure.get_cell_volume(),
            'kpoints_mesh': [int(k) for k in self.inputs.kpoints_mesh.get_list()],
            'smearing': f'{system.get("smearing", "none")} {system.get("degauss", 0.0):g} Ry',
            'nspin': system.get('nspin', 1),
            'ecutwfc': self.ctx.ecutwfc,
            'ecutrho': [e * self.ctx.dual for e in self.ctx.ecutwfc],
        }
        kwargs = {}
        for index, child in enumerate(children):
            kwargs[f'output_parameters_{index}'] = child.outputs.output_parameters
            kwargs[f'output_trajectory_{index}'] = child.outputs.output_trajectory
        results = analyse_cutoffs_convergence(
            self.inputs.criteria, orm.Dict(series), **kwargs, metadata={'call_link_label': 'analyse'}
        )
        history = results['history']
        self.out('history', history)
        lines = [
            f'  {w:6.1f}/{r:6.1f} Ry: dE = {de:+9.3f} meV/atom, dP = {dp:+7.3f} GPa'
            for w, r, de, dp in zip(
                history['ecutwfc'], history['ecutrho'], history['energy_change_mev_per_atom'],
                history['pressure_change_gpa'],
            )
        ]  # fmt: skip
        self.report('cutoff series (changes from the highest cutoff):\n' + '\n'.join(lines))
        if not history['converged']:
            return self.exit_codes.ERROR_NOT_CONVERGED
        self.out('ecutwfc', results['ecutwfc'])
        self.out('ecutrho', results['ecutrho'])
        self.report(f'converged: ecutwfc = {history["ecutwfc_converged"]:g} Ry, ecutrho = '
                    f'{history["ecutrho_converged"]:g} Ry')  # fmt: skip
        return None

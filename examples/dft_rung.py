"""One rung alone: the DFT equation of state and elastic constants, ``verdi run examples/dft_rung.py [--element Al]``.

Runs in the foreground (``run_get_node``) on the fast protocol and prints the two handoffs the chain would pass to the
``dft_to_md`` bridge, so a user can look at the DFT numbers before committing to a whole chain.
"""

import argparse

from aiida import orm
from aiida.engine import run_get_node

from aiida_multiscale.workflows.dft import DftWorkChain

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--element', default='Al')
parser.add_argument('--protocol', default='fast', choices=['fast', 'moderate', 'precise'])
args = parser.parse_args()

builder = DftWorkChain.get_builder_from_protocol(
    orm.load_code('pw@localhost'), element=args.element, protocol=args.protocol
)
results, node = run_get_node(builder)
print(f'DftWorkChain<{node.pk}> exit status {node.exit_status}')
for label in ('eos', 'elastic'):
    if label in results:
        print(f'{label}:')
        for name, spec in results[label].summary().items():
            print(f'  {name} = {spec["value"]:.5g} +/- {spec["std"] or 0:.2g} {spec["unit"]}')

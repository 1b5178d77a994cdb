"""Protocol files and overrides that are validated, never mutate the caller's dict, and can remove keys with None.

The most-filed complaint about aiida-quantumespresso's protocol design is overrides that are silently ignored (a typo
in a key), mutated (the caller's dict changes under them) or impossible to unset.  Here:

* an override key that the protocol does not define raises ``ValueError`` naming the key and the allowed ones, except
  below keys the work chain declares *open* (free-form dicts such as pw.x ``parameters``), where any key is allowed;
* the caller's dict is deep-copied before anything is merged;
* an override value ``None`` removes the key from the result.
"""

from __future__ import annotations

import copy
import functools
import pathlib
import typing as t

import yaml

__all__ = ('ProtocolMixin', 'load_protocol_file', 'merge_overrides', 'recursive_merge')

PROTOCOL_FOLDER = pathlib.Path(__file__).parent


@functools.cache
def _read(path: str) -> dict:
    with open(path, encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def load_protocol_file(name: str) -> dict:
    """Return a deep copy of ``protocols/<name>.yaml`` (``default_inputs``, ``default_protocol``, ``protocols``)."""
    path = PROTOCOL_FOLDER / f'{name}.yaml'
    data = copy.deepcopy(_read(str(path)))
    for key in ('default_inputs', 'default_protocol', 'protocols'):
        if key not in data:
            raise ValueError(f'protocol file {path} lacks the top-level key {key!r}')
    return data


def recursive_merge(base: dict, update: t.Mapping) -> dict:
    """Return ``base`` updated by ``update`` (both left untouched); ``None`` in ``update`` deletes the key."""
    result = copy.deepcopy(base)
    for key, value in update.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, t.Mapping) and isinstance(result.get(key), dict):
            result[key] = recursive_merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _check_keys(base: t.Mapping, overrides: t.Mapping, open_paths: t.Collection[str], path: str = '') -> None:
    for key, value in overrides.items():
        here = f'{path}.{key}' if path else key
        if here in open_paths:
            continue
        if key not in base:
            allowed = ', '.join(sorted(map(str, base))) or '(none)'
            raise ValueError(f'unknown override key {here!r}; allowed here: {allowed}')
        if isinstance(value, t.Mapping) and isinstance(base[key], t.Mapping):
            _check_keys(base[key], value, open_paths, here)


def merge_overrides(inputs: dict, overrides: t.Mapping | None, open_paths: t.Collection[str] = ()) -> dict:
    """Validate ``overrides`` against ``inputs`` and return the merged copy; neither argument is modified.

    :param inputs: the protocol inputs (defaults merged with the chosen protocol).
    :param overrides: nested dict of changes; ``None`` as a value removes that key.
    :param open_paths: dotted paths below which any key is accepted (free-form dicts).
    """
    if not overrides:
        return copy.deepcopy(inputs)
    if not isinstance(overrides, t.Mapping):
        raise ValueError(f'overrides must be a dict, got {type(overrides).__name__}')
    _check_keys(inputs, overrides, set(open_paths))
    return recursive_merge(inputs, overrides)


class ProtocolMixin:
    """Protocol support for a work chain: set ``_protocol_file`` (name of the YAML) and optionally ``_open_paths``."""

    _protocol_file: t.ClassVar[str] = ''
    _open_paths: t.ClassVar[tuple[str, ...]] = ()

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        return PROTOCOL_FOLDER / f'{cls._protocol_file}.yaml'

    @classmethod
    def get_default_protocol(cls) -> str:
        return load_protocol_file(cls._protocol_file)['default_protocol']

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict]:
        """``{name: {'description': ...}}`` for every protocol in the file."""
        data = load_protocol_file(cls._protocol_file)
        return {name: {'description': spec.get('description', '')} for name, spec in data['protocols'].items()}

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: t.Mapping | None = None) -> dict:
        """Defaults merged with ``protocol``, then with validated ``overrides`` (a new dict every call)."""
        data = load_protocol_file(cls._protocol_file)
        protocol = protocol or data['default_protocol']
        if protocol not in data['protocols']:
            raise ValueError(f'unknown protocol {protocol!r}; choose one of {", ".join(data["protocols"])}')
        chosen = {k: v for k, v in data['protocols'][protocol].items() if k != 'description'}
        inputs = recursive_merge(data['default_inputs'], chosen)
        return merge_overrides(inputs, overrides, cls._open_paths)

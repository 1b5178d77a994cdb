"""Probes of the loaded profile's services (PostgreSQL storage, RabbitMQ broker) before anything is stored."""

from __future__ import annotations

import socket

from aiida_multiscale.setup.errors import SetupError

__all__ = ('check_services', 'port_open')


def port_open(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds.

    A plain socket first, because a closed port makes AiiDA's own clients retry for a long time and then fail with a
    traceback rather than a message that names the service.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def check_services() -> None:
    """Check that the loaded profile's PostgreSQL and RabbitMQ answer; raise :class:`SetupError` otherwise."""
    from aiida.manage import get_manager

    profile = get_manager().get_profile()
    if profile is None:
        raise SetupError('no AiiDA profile is loaded: create one with `make profile` or pass `-p PROFILE`')
    storage = profile.storage_config
    if profile.storage_backend == 'core.psql_dos':
        host, port = storage.get('database_hostname', 'localhost'), int(storage.get('database_port', 5432))
        if not port_open(host, port):
            raise SetupError(
                f'PostgreSQL does not answer at {host}:{port} (profile {profile.name!r}): start it, e.g. '
                '`pg_ctlcluster --skip-systemctl-redirect 15 main start`, then rerun `aiida-multiscale setup`'
            )
    try:
        get_manager().get_profile_storage()
    except Exception as exc:
        raise SetupError(
            f'cannot open the storage of profile {profile.name!r}: {str(exc).splitlines()[0]}; check that the '
            'database exists and the credentials in `verdi profile show` are right'
        ) from None
    if profile.process_control_backend == 'core.rabbitmq':
        config = profile.process_control_config
        host, port = config.get('broker_host', '127.0.0.1'), int(config.get('broker_port', 5672))
        if not port_open(host, port):
            raise SetupError(
                f'RabbitMQ does not answer at {host}:{port} (profile {profile.name!r}): start it with '
                '`rabbitmq-server -detached`, then rerun `aiida-multiscale setup`'
            )

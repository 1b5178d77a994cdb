"""Private PostgreSQL, RabbitMQ and AiiDA profile owned by one test, so that the test may kill and restart them.

The shared services (PostgreSQL on 5432, RabbitMQ on 5672) serve the pytest process itself and every other test on
the machine: a fault test must never restart them.  :func:`private_services` brings up, in a temporary folder and on
free ports,

* a PostgreSQL cluster (``initdb`` as the ``postgres`` user, trust authentication, its socket in the folder),
* a second RabbitMQ node (its own node name, AMQP and distribution ports, Mnesia and log folders, no plugins, and
  the ``consumer_timeout`` fix of ``docker/rabbitmq-advanced.config``; it shares only ``epmd`` and the Erlang cookie
  with the machine's node),
* an AiiDA configuration folder (``AIIDA_PATH``) with one ``core.psql_dos`` profile on them, made with ``verdi`` as a
  user would, with the settings of ``tests/conftest.py`` (``runner.poll.interval`` 1, ``daemon.timeout`` 20),

and always tears all of it down again (daemon, RabbitMQ node, PostgreSQL, folder), also when the test fails.
Everything AiiDA does in that profile runs in subprocesses (:meth:`PrivateProfile.run`): the pytest process has its
own profile loaded and must not switch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil

__all__ = ('PrivatePostgres', 'PrivateProfile', 'PrivateRabbitMQ', 'chain_summary', 'free_port', 'private_services')

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = pathlib.Path(sys.prefix) / 'bin'
RABBITMQ_BIN = pathlib.Path('/usr/lib/rabbitmq/bin')


class ServiceError(RuntimeError):
    """A private service could not be started or stopped; the message carries the tail of its output."""


def free_port() -> int:
    """A TCP port that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = '127.0.0.1') -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _run(cmd, *, env=None, timeout=120, check=True, user=None) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    if user is not None and os.geteuid() == 0:
        cmd = ['runuser', '-u', user, '--', *cmd]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        tail = '\n'.join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise ServiceError(f'`{" ".join(cmd)}` exited {result.returncode}:\n{tail}')
    return result


# ---------------------------------------------------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PrivatePostgres:
    """A PostgreSQL cluster in ``folder`` listening on 127.0.0.1:``port`` (trust authentication)."""

    folder: pathlib.Path
    port: int
    user: str = 'postgres'

    @property
    def bindir(self) -> pathlib.Path:
        found = sorted(glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'))
        if not found:
            raise ServiceError(
                'no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: apt-get install postgresql'
            )
        return pathlib.Path(found[-1]).parent

    @property
    def data(self) -> pathlib.Path:
        return self.folder / 'data'

    def _pg_ctl(self, *args, timeout=120, check=True):
        return _run(
            [self.bindir / 'pg_ctl', '-D', self.data, '-l', self.folder / 'postgres.log', '-w', '-t', '60', *args],
            user=self.user,
            timeout=timeout,
            check=check,
        )

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, self.user, self.user)
        _run(
            [self.bindir / 'initdb', '-D', self.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C'],
            user=self.user,
        )
        conf = self.data / 'postgresql.conf'
        with conf.open('a') as handle:
            handle.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.folder}'\n"
                'fsync = off\nsynchronous_commit = off\nmax_connections = 50\n'
            )

    def start(self) -> None:
        self._pg_ctl('start')

    def stop(self) -> None:
        if (self.data / 'postmaster.pid').exists():
            self._pg_ctl('stop', '-m', 'fast', check=False)

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every client connection is cut, as when a server is restarted for real."""
        self._pg_ctl('restart', '-m', 'fast')

    def psql(self, sql: str) -> str:
        return _run(
            ['psql', '-h', '127.0.0.1', '-p', self.port, '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1',
             '-qtAc', sql]
        ).stdout  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PrivateRabbitMQ:
    """A second RabbitMQ node ``nodename`` with AMQP on 127.0.0.1:``port``.

    The node gets its own configuration through ``RABBITMQ_CONF_ENV_FILE`` (the machine's ``rabbitmq-env.conf`` names
    the main node, so it must not be read) and ``RABBITMQ_CONFIG_FILE`` (the machine's ``rabbitmq.conf`` binds 5672).
    """

    folder: pathlib.Path
    port: int
    dist_port: int
    nodename: str
    user: str = 'rabbitmq'
    _server: subprocess.Popen | None = dataclasses.field(default=None, repr=False)

    def _env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith('RABBITMQ_')}
        env.update({
            'HOME': '/var/lib/rabbitmq' if os.path.isdir('/var/lib/rabbitmq') else str(self.folder),
            'RABBITMQ_CONF_ENV_FILE': str(self.folder / 'rabbitmq-env.conf'),
            'RABBITMQ_NODENAME': self.nodename,
        })  # fmt: skip
        return env

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ('mnesia', 'log'):
            (self.folder / name).mkdir(exist_ok=True)
        (self.folder / 'enabled_plugins').write_text('[].\n')
        (self.folder / 'rabbitmq.conf').write_text(
            f'listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n'
        )
        # The consumer_timeout fix of docker/rabbitmq-advanced.config (RabbitMQ >= 3.8.15 kills long consumers).
        shutil.copy(ROOT / 'docker' / 'rabbitmq-advanced.config', self.folder / 'advanced.config')
        (self.folder / 'rabbitmq-env.conf').write_text(
            f'NODENAME={self.nodename}\n'
            f'NODE_PORT={self.port}\n'
            f'DIST_PORT={self.dist_port}\n'
            f'CONFIG_FILE={self.folder / "rabbitmq.conf"}\n'
            f'ADVANCED_CONFIG_FILE={self.folder / "advanced.config"}\n'
            f'ENABLED_PLUGINS_FILE={self.folder / "enabled_plugins"}\n'
            f'MNESIA_BASE={self.folder / "mnesia"}\n'
            f'LOG_BASE={self.folder / "log"}\n'
            f'PID_FILE={self.folder / "rabbit.pid"}\n'
            'ERL_EPMD_ADDRESS=127.0.0.1\n'
            'export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"\n'
        )
        if os.geteuid() == 0:
            for path in [self.folder, *self.folder.rglob('*')]:
                shutil.chown(path, self.user, self.user)

    def ctl(self, *args, timeout=120, check=True) -> subprocess.CompletedProcess:
        return _run(
            [RABBITMQ_BIN / 'rabbitmqctl', '-n', self.nodename, *args],
            env=self._env(),
            user=self.user,
            timeout=timeout,
            check=check,
        )

    def start(self) -> None:
        """Start the node in the foreground of a child process (``-detached`` returns before the node registers)."""
        log = (self.folder / 'server.out').open('a')
        cmd = [str(RABBITMQ_BIN / 'rabbitmq-server')]
        if os.geteuid() == 0:
            cmd = ['runuser', '-u', self.user, '--', *cmd]
        self._server = subprocess.Popen(
            cmd, env=self._env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 180
        while not port_open(self.port):
            if self._server.poll() is not None or time.monotonic() > deadline:
                tail = '\n'.join((self.folder / 'server.out').read_text().splitlines()[-15:])
                raise ServiceError(f'RabbitMQ node {self.nodename} did not come up on port {self.port}:\n{tail}')
            time.sleep(0.5)
        self.ctl('await_startup', '--timeout', '120', timeout=150)

    def stop(self) -> None:
        server = getattr(self, '_server', None)
        if server is None or server.poll() is not None:
            return
        self.ctl('stop', timeout=120, check=False)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:  # last resort: the process group of *this* node's server, by its id
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    def restart(self) -> None:
        """Stop the whole node (not just the app) and start it again: every connection is cut."""
        self.stop()
        deadline = time.monotonic() + 60
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.5)
        self.start()


# ---------------------------------------------------------------------------------------------------------------------
# AiiDA profile
# ---------------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class PrivateProfile:
    """An AiiDA configuration folder with one profile on the private services; every command runs in a subprocess."""

    folder: pathlib.Path
    name: str
    postgres: PrivatePostgres
    rabbitmq: PrivateRabbitMQ

    @property
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ('AIIDA_PROFILE', 'AIIDA_PATH')}
        env['AIIDA_PATH'] = str(self.folder)
        env['PATH'] = f'{BIN}{os.pathsep}{env.get("PATH", "")}'
        return env

    @property
    def daemon_dir(self) -> pathlib.Path:
        return self.folder / '.aiida' / 'daemon'

    def run(self, *cmd, timeout=600, check=True) -> subprocess.CompletedProcess:
        return _run(cmd, env=self.env, timeout=timeout, check=check)

    def verdi(self, *args, timeout=600, check=True, profile=True) -> subprocess.CompletedProcess:
        selection = ('-p', self.name) if profile else ()
        return self.run(BIN / 'verdi', *selection, *args, timeout=timeout, check=check)

    def python(self, code: str, *args, timeout=600, check=True) -> subprocess.CompletedProcess:
        """Run ``code`` in a fresh interpreter with the profile loaded (``tests/`` importable)."""
        prelude = (
            f'import sys; sys.path.insert(0, {str(ROOT / "tests")!r}); '
            f'from aiida import load_profile; load_profile({self.name!r}, allow_switch=True)\n'
        )
        return self.run(sys.executable, '-c', prelude + code, *args, timeout=timeout, check=check)

    def create(self) -> None:
        """Database, profile and broker made as a user would (``scripts/profile.sh`` does the same on 5432/5672)."""
        self.postgres.psql(f"CREATE DATABASE {self.name} OWNER postgres ENCODING 'UTF8' TEMPLATE template0")
        self.verdi(
            'profile', 'setup', 'core.psql_dos', '-n', '--profile-name', self.name, '--set-as-default',
            '--email', 'faults@localhost', '--first-name', 'Fault', '--last-name', 'Test', '--institution', 'tests',
            '--broker', 'core.rabbitmq', '--database-engine', 'postgresql_psycopg',
            '--database-hostname', '127.0.0.1', '--database-port', str(self.postgres.port),
            '--database-username', 'postgres', '--database-password', 'unused', '--database-name', self.name,
            '--repository-uri', f'file://{self.folder / "repository"}', profile=False,
        )  # fmt: skip
        self.verdi(
            'profile', 'configure-broker', 'core.rabbitmq', self.name, '-n', '--broker-host', '127.0.0.1',
            '--broker-port', str(self.rabbitmq.port), '--broker-username', 'guest', '--broker-password', 'guest',
        )  # fmt: skip
        self.verdi('config', 'set', 'runner.poll.interval', '1')
        self.verdi('config', 'set', 'daemon.timeout', '20')
        self.verdi('config', 'set', '-g', 'warnings.rabbitmq_version', 'False', profile=False)

    # -- daemon ------------------------------------------------------------------------------------------------------
    def daemon_start(self, workers: int = 2) -> None:
        self.verdi('daemon', 'start', str(workers), timeout=180)

    def daemon_stop(self) -> None:
        self.verdi('daemon', 'stop', timeout=180, check=False)

    def circus_pid(self) -> int | None:
        try:
            return int((self.daemon_dir / f'circus-{self.name}.pid').read_text().strip())
        except (OSError, ValueError):
            return None

    def daemon_processes(self) -> list[psutil.Process]:
        """The circus daemon of this profile and everything under it (the workers), read from its pid file."""
        pid = self.circus_pid()
        if pid is None or not psutil.pid_exists(pid):
            return []
        try:
            circus = psutil.Process(pid)
            if self.name not in ' '.join(circus.cmdline()):
                return []  # a stale pid file whose pid was reused
            return [circus, *circus.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def daemon_kill(self) -> list[int]:
        """SIGKILL the circus daemon and its workers at once, as the OOM killer or a node crash would."""
        processes = self.daemon_processes()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        psutil.wait_procs(processes, timeout=30)
        return [p.pid for p in processes]

    def kill_leftovers(self) -> None:
        """Teardown: anything of this profile's daemon that ``verdi daemon stop`` left running."""
        processes = self.daemon_processes()
        for proc in psutil.process_iter(['pid', 'cmdline']):
            with contextlib.suppress(psutil.Error, TypeError):
                cmdline = ' '.join(proc.info['cmdline'] or ())
                if 'verdi' in cmdline and f'-p {self.name} ' in cmdline + ' ' and proc.pid != os.getpid():
                    processes.append(proc)
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        psutil.wait_procs(processes, timeout=30)


def chain_summary(pk: int) -> dict:
    """What a fault test compares between two runs of the chain, from the loaded profile (JSON-serialisable).

    ``calls`` holds one entry per process called below the chain, keyed by its path of call-link labels (e.g.
    ``dft/eos_0/iteration_01``): a duplicate calculation shows as a path that occurs twice, lost work as a missing one,
    and an extra restart of a ``BaseRestartWorkChain`` as an ``iteration_02`` the reference does not have.
    """
    from aiida import orm
    from aiida.common.links import LinkType

    chain = orm.load_node(pk)
    calls = []

    def walk(node, path):
        for link in node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all():
            child, label = link.node, f'{path}/{link.link_label}' if path else link.link_label
            entry = {
                'path': label,
                'pk': child.pk,
                'process_label': child.process_label,
                'state': child.process_state.value if child.process_state else None,
                'exit_status': child.exit_status,
            }
            if isinstance(child, orm.CalcJobNode):
                entry.update(computer=child.computer.label, scheduler=child.computer.scheduler_type,
                             job_id=child.get_job_id())  # fmt: skip
            calls.append(entry)
            walk(child, label)

    walk(chain, '')
    macro = chain.outputs.macro.quantities if 'macro' in chain.outputs else {}
    unterminated = (
        orm.QueryBuilder()
        .append(
            orm.ProcessNode,
            project=['id'],
            filters={'attributes.process_state': {'!in': ['finished', 'excepted', 'killed']}},
        )
        .all(flat=True)
    )
    return {
        'pk': chain.pk,
        'state': chain.process_state.value if chain.process_state else None,
        'exit_status': chain.exit_status,
        'exit_message': chain.exit_message,
        'macro': macro,
        'calls': calls,
        'unterminated': unterminated,
    }


@dataclasses.dataclass
class PrivateServices:
    folder: pathlib.Path
    postgres: PrivatePostgres
    rabbitmq: PrivateRabbitMQ
    profile: PrivateProfile

    def summary(self) -> dict:
        return {
            'folder': str(self.folder),
            'postgres_port': self.postgres.port,
            'rabbitmq_port': self.rabbitmq.port,
            'rabbitmq_node': self.rabbitmq.nodename,
            'profile': self.profile.name,
        }


@contextlib.contextmanager
def private_services(keep_on_failure: bool = False):
    """Yield :class:`PrivateServices` (PostgreSQL, RabbitMQ node, AiiDA profile); tear everything down on exit."""
    tag = secrets.token_hex(4)
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f'msfault_{tag}_', dir='/tmp'))
    os.chmod(folder, 0o755)  # the postgres and rabbitmq users must reach their sub-folders
    postgres = PrivatePostgres(folder / 'postgres', free_port())
    rabbitmq = PrivateRabbitMQ(folder / 'rabbitmq', free_port(), free_port(), f'msfault{tag}@localhost')
    profile = PrivateProfile(folder / 'aiida', f'fault_{tag}', postgres, rabbitmq)
    services = PrivateServices(folder, postgres, rabbitmq, profile)
    failed = False
    try:
        postgres.init()
        postgres.start()
        rabbitmq.init()
        rabbitmq.start()
        profile.folder.mkdir()
        profile.create()
        yield services
    except BaseException:
        failed = True
        raise
    finally:
        errors = []
        for step in (profile.daemon_stop, profile.kill_leftovers, rabbitmq.stop, postgres.stop):
            try:
                step()
            except Exception as exc:  # keep tearing down: report the first error afterwards
                errors.append(f'{step.__qualname__}: {exc}')
        if not (failed and keep_on_failure):
            shutil.rmtree(folder, ignore_errors=True)
        if errors and not failed:
            raise ServiceError('teardown of the private services: ' + '; '.join(errors))


if __name__ == '__main__':  # manual check: bring everything up, print where, wait for Enter, tear down
    with private_services() as services:
        print(json.dumps(services.summary()))
        input('up; press Enter to tear down ')

"""Benchmark: the chain list, a chain page and ``trace`` on a profile of about 10^5 nodes.

Usage (needs an archive of one finished chain: ``verdi archive create chain.aiida -N PK``)::

    python benchmarks/trace.py chain.aiida                   # PostgreSQL (the suite's server), 10^5 nodes
    python benchmarks/trace.py chain.aiida --storage sqlite  # the embedded profile's storage
    python benchmarks/trace.py chain.aiida --nodes 20000 --repeat 20

What it does.  A throw-away profile is made in a temporary configuration folder (PostgreSQL: a temporary database on
``$AIIDA_MULTISCALE_PGHOST:$AIIDA_MULTISCALE_PGPORT`` as ``$AIIDA_MULTISCALE_PGSUPERUSER``, dropped at the end;
SQLite: a temporary folder).  The chain of the archive is copied inside the archive's own SQLite database, every copy
with new UUIDs and the same links, until the archive holds ``--nodes`` nodes; the file repository is shared by all
copies, so the archive stays small.  One ``import_archive`` fills the profile: tens of chains of the real shape, not
one chain beside 10^5 unrelated nodes (as many chains as copies, if the archive holds one chain); then ``ANALYZE``, as
autovacuum would, so that the database plans its queries with statistics of the filled tables.

What it reports (median and maximum wall time of ``--repeat`` runs, in ms, and the median CPU time of the process;
the first run is a warm-up and not counted):
the chain list (``GET /``), a chain page (``GET /chain/<uuid>``, the newest chain), the graph JSON, the trace query
(``trace`` + ``trace_json``), and ``aiida-multiscale trace PK --format json`` from the shell (wall and CPU time,
start-up included) beside ``verdi node attributes PK`` (aiida's own start-up, profile and one node loaded).
Targets: list and chain page within 200 ms, the trace query within 100 ms, the command within 1 s plus the query.
The server answers through Flask's test client, in the process, read-only, as ``serve`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile

BIN = pathlib.Path(sys.executable).parent
PG_HOST = os.environ.get('AIIDA_MULTISCALE_PGHOST', '127.0.0.1')
PG_PORT = os.environ.get('AIIDA_MULTISCALE_PGPORT', '5432')
PG_SUPERUSER = os.environ.get('AIIDA_MULTISCALE_PGSUPERUSER', 'postgres')


def _psql(sql: str) -> None:
    command = ['psql', '-h', PG_HOST, '-p', PG_PORT, '-U', PG_SUPERUSER, '-d', 'postgres', '-v', 'ON_ERROR_STOP=1']
    subprocess.run([*command, '-qc', sql], check=True, capture_output=True, text=True)


def multiply_archive(source: pathlib.Path, target: pathlib.Path, nodes: int) -> tuple[int, int]:
    """Write ``target``: the archive ``source`` with its nodes and links copied, new UUIDs each time, to ``nodes``.

    Returns (copies, nodes written).  Only the archive's SQLite database changes; ``metadata.json`` and the repository
    files are copied as they are.
    """
    with tempfile.TemporaryDirectory() as folder:
        database = pathlib.Path(folder) / 'db.sqlite3'
        with zipfile.ZipFile(source) as archive:
            database.write_bytes(archive.read('db.sqlite3'))
        connection = sqlite3.connect(database)
        columns = [row[1] for row in connection.execute('PRAGMA table_info(db_dbnode)')]
        rows = connection.execute(f'SELECT {", ".join(columns)} FROM db_dbnode').fetchall()
        link_columns = [row[1] for row in connection.execute('PRAGMA table_info(db_dblink)')]
        links = connection.execute(f'SELECT {", ".join(link_columns)} FROM db_dblink').fetchall()
        per_copy = len(rows)
        copies = max(1, nodes // per_copy)
        id_index, uuid_index = columns.index('id'), columns.index('uuid')
        link_id, link_in, link_out = (link_columns.index(name) for name in ('id', 'input_id', 'output_id'))
        node_offset = max(row[id_index] for row in rows) + 1
        link_offset = max((row[link_id] for row in links), default=0) + 1
        node_sql = f'INSERT INTO db_dbnode ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
        link_sql = f'INSERT INTO db_dblink ({", ".join(link_columns)}) VALUES ({", ".join("?" * len(link_columns))})'
        for copy in range(1, copies):
            new_rows = []
            for row in rows:
                row = list(row)
                row[id_index] += copy * node_offset
                row[uuid_index] = str(uuid.uuid4())
                new_rows.append(row)
            connection.executemany(node_sql, new_rows)
            new_links = []
            for row in links:
                row = list(row)
                row[link_id] += copy * link_offset
                row[link_in] += copy * node_offset
                row[link_out] += copy * node_offset
                new_links.append(row)
            connection.executemany(link_sql, new_links)
        connection.commit()
        connection.close()
        with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, 'w', zipfile.ZIP_DEFLATED) as out:
            for item in archive.infolist():
                if item.filename == 'db.sqlite3':
                    out.write(database, 'db.sqlite3')
                else:
                    out.writestr(item, archive.read(item.filename))
    return copies, copies * per_copy


def make_profile(storage: str, folder: pathlib.Path) -> tuple[str, str | None]:
    """A throw-away profile in ``folder`` (the configuration folder is set with AIIDA_PATH); (name, database)."""
    name = f'bench_trace_{secrets.token_hex(4)}'
    common = ['-n', '--profile-name', name, '--email', 'bench@localhost', '--first-name', 'B', '--last-name', 'B',
              '--institution', 'B', '--broker', 'none']  # fmt: skip
    if storage == 'sqlite':
        command = [str(BIN / 'verdi'), 'profile', 'setup', 'core.sqlite_dos', *common, '--filepath', str(folder / 'db')]
        database = None
    else:
        database = name
        _psql(f"CREATE DATABASE {database} OWNER {PG_SUPERUSER} ENCODING 'UTF8' TEMPLATE template0")
        command = [str(BIN / 'verdi'), 'profile', 'setup', 'core.psql_dos', *common,
                   '--database-engine', 'postgresql_psycopg', '--database-hostname', PG_HOST,
                   '--database-port', PG_PORT, '--database-username', PG_SUPERUSER, '--database-password', '',
                   '--database-name', database, '--repository-uri', f'file://{folder / "repository"}']  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True)
    return name, database


def analyze() -> None:
    """Refresh the query planner's statistics of the profile's database, as autovacuum (PostgreSQL) does a minute or so
    after a large import.

    Without them, PostgreSQL plans the recursive provenance queries of a freshly imported profile for tables it takes
    to be nearly empty (a scan of every link per generation, not the index on the link's node), so that the figures
    would measure the missing statistics, not the queries.  SQLite gets the same ``ANALYZE``.
    """
    from aiida.manage import get_manager
    from sqlalchemy import text

    session = get_manager().get_profile_storage().get_session()
    session.execute(text('ANALYZE'))
    session.commit()


def timed(function, repeat: int) -> dict:
    """Median and maximum wall time of ``function()`` in ms over ``repeat`` runs after one warm-up run, and the median
    CPU time of this process (the database server's is not in it): on a loaded machine the wall time grows with the
    load, the CPU time much less."""
    function()
    times, cpus = [], []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        function()
        times.append((time.perf_counter() - start) * 1e3)
        cpus.append((time.process_time() - cpu) * 1e3)
    return {
        'median_ms': round(statistics.median(times), 1),
        'max_ms': round(max(times), 1),
        'cpu_median_ms': round(statistics.median(cpus), 1),
    }


def shell_command(command: list[str], repeat: int) -> dict:
    """``command`` run from the shell ``repeat`` times: median wall and CPU time (user + system) in ms."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = os.times()
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append((time.perf_counter() - start) * 1e3)
        after = os.times()
        cpus.append((after.children_user - before.children_user + after.children_system - before.children_system) * 1e3)
    return {'median_ms': round(statistics.median(walls), 1), 'cpu_median_ms': round(statistics.median(cpus), 1)}


def shell_trace(profile: str, pk: int, repeat: int) -> dict:
    """``aiida-multiscale trace PK --format json`` from the shell, start-up included."""
    command = [str(BIN / 'aiida-multiscale'), '-p', profile, 'trace', str(pk), '--format', 'json']
    return shell_command(command, repeat)


def shell_verdi(profile: str, pk: int, repeat: int) -> dict:
    """``verdi node attributes PK``: what aiida's own command line costs to start, load the profile and one node (the
    baseline that the trace command's start-up is compared with)."""
    return shell_command([str(BIN / 'verdi'), '-p', profile, 'node', 'attributes', str(pk)], repeat)


def run(archive: pathlib.Path, storage: str, nodes: int, repeat: int, shell_repeat: int) -> dict:
    folder = pathlib.Path(tempfile.mkdtemp(prefix='bench_trace_'))
    os.environ['AIIDA_PATH'] = str(folder / 'config')
    database = None
    try:
        big = folder / 'multiplied.aiida'
        start = time.perf_counter()
        copies, written = multiply_archive(archive, big, nodes)
        multiply_s = time.perf_counter() - start
        name, database = make_profile(storage, folder)

        from aiida import load_profile, orm
        from aiida.tools.archive.imports import import_archive

        load_profile(name)
        start = time.perf_counter()
        import_archive(big)
        import_s = time.perf_counter() - start
        start = time.perf_counter()
        analyze()
        analyze_s = time.perf_counter() - start
        total = orm.QueryBuilder().append(orm.Node).count()

        from aiida_multiscale.provenance.lineage import trace, trace_json
        from aiida_multiscale.web.app import create_app
        from aiida_multiscale.web.queries import CHAIN_PROCESS_TYPE

        query = orm.QueryBuilder().append(orm.WorkflowNode, filters={'process_type': CHAIN_PROCESS_TYPE}, project='*')
        chains = sorted((node for (node,) in query.iterall()), key=lambda node: node.ctime)
        chain = chains[-1]
        client = create_app(read_only=True).test_client()

        def get(url):
            def call():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)

            return call

        load_before = os.getloadavg()[0]
        results = {
            'storage': storage,
            'nodes': total,
            'chains': len(chains),
            'copies_of_the_archived_chain': copies,
            'nodes_per_copy': written // copies,
            'fill_s': {
                'multiply_archive': round(multiply_s, 1),
                'import_archive': round(import_s, 1),
                'analyze': round(analyze_s, 1),
            },  # fmt: skip
            'chain_list': timed(get('/'), repeat),
            'chain_page': timed(get(f'/chain/{chain.uuid}'), repeat),
            'chain_graph_json': timed(get(f'/chain/{chain.uuid}/graph.json'), repeat),
            'node_page': timed(get(f'/node/{chain.uuid}'), repeat),
            'trace_query': timed(lambda: trace_json(trace(chain)), repeat),
            'trace_command': shell_trace(name, chain.pk, shell_repeat),
            'verdi_node_attributes': shell_verdi(name, chain.pk, shell_repeat),
        }
        # The machine's load (1-minute average) before and after the timings: the wall times scale with it.
        results['load_average'] = [round(load_before, 1), round(os.getloadavg()[0], 1)]
        return results
    finally:
        try:
            from aiida.manage import get_manager

            get_manager().get_profile_storage().close()
        except Exception:
            pass
        if database:
            _psql(f'DROP DATABASE IF EXISTS {database} WITH (FORCE)')
        shutil.rmtree(folder, ignore_errors=True)


#: Run in a subprocess on the default profile (before this process switches to its own configuration folder).
EXPORT_NEWEST = """
import sys
from aiida import load_profile, orm
from aiida.tools.archive import create_archive
load_profile()
query = orm.QueryBuilder().append(
    orm.WorkflowNode, filters={'process_type': 'aiida.workflows:multiscale.chain', 'attributes.exit_status': 0},
    project='*').order_by({orm.WorkflowNode: {'ctime': 'desc'}}).limit(1)
chain = query.first(flat=True)
if chain is None:
    raise SystemExit('no finished chain in the default profile: run `make demo`, or pass an archive')
create_archive([chain], filename=sys.argv[1])
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        'archive',
        type=pathlib.Path,
        nargs='?',
        help='An archive of one finished MultiscaleWorkChain (default: the newest of the default profile, exported).',
    )
    parser.add_argument('--storage', choices=('psql', 'sqlite'), default='psql', help='Storage of the profile.')
    parser.add_argument('--nodes', type=int, default=100_000, help='Nodes to fill the profile with (default 10^5).')
    parser.add_argument('--repeat', type=int, default=10, help='Timed runs per figure (default 10).')
    parser.add_argument('--shell-repeat', type=int, default=3, help='Runs of the trace command (default 3).')
    parser.add_argument('--json', action='store_true', help='Print the figures as one JSON object.')
    args = parser.parse_args()
    archive = args.archive
    with tempfile.TemporaryDirectory() as folder:
        if archive is None:
            archive = pathlib.Path(folder) / 'chain.aiida'
            result = subprocess.run([sys.executable, '-c', EXPORT_NEWEST, str(archive)], capture_output=True, text=True)
            if result.returncode != 0:
                print(f'benchmarks/trace.py: skipped: {result.stderr.strip().splitlines()[-1]}')
                return 0
        results = run(archive, args.storage, args.nodes, args.repeat, args.shell_repeat)
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f'profile: {results["storage"]}, {results["nodes"]} nodes, {results["chains"]} chains '
        f'({results["copies_of_the_archived_chain"]} copies of an archive of {results["nodes_per_copy"]} nodes)'
    )
    print(f'fill: archive multiplied in {results["fill_s"]["multiply_archive"]} s, imported in '
          f'{results["fill_s"]["import_archive"]} s, statistics in {results["fill_s"]["analyze"]} s')  # fmt: skip
    print(f'load average (1 min) before and after the timings: {results["load_average"]}, on {os.cpu_count()} CPUs')
    targets = {'chain_list': 200, 'chain_page': 200, 'trace_query': 100}
    for key in ('chain_list', 'chain_page', 'chain_graph_json', 'node_page', 'trace_query'):
        figure = results[key]
        target = f'  (target {targets[key]} ms)' if key in targets else ''
        print(
            f'{key:<18} median {figure["median_ms"]:>8.1f} ms   max {figure["max_ms"]:>8.1f} ms   '
            f'CPU {figure["cpu_median_ms"]:>7.1f} ms{target}'
        )
    for key in ('trace_command', 'verdi_node_attributes'):
        shell = results[key]
        print(f'{key:<18} median {shell["median_ms"]:>8.1f} ms   CPU {shell["cpu_median_ms"]:>8.1f} ms')
    return 0


if __name__ == '__main__':
    sys.exit(main())

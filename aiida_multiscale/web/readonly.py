"""Open the loaded profile's database read-only: the browser shows provenance and must never change it.

aiida-core has no read-only mode for its storage backends, but both ``core.psql_dos`` and ``core.sqlite_dos`` talk to
their database through one SQLAlchemy engine.  Every connection that engine opens from now on is made read-only by the
database itself (PostgreSQL: ``default_transaction_read_only``; SQLite: ``PRAGMA query_only``), so that a write from
any code path, ours or aiida's, fails instead of reaching the data.
"""

from __future__ import annotations

__all__ = ('make_storage_read_only',)


def _engine(storage):
    session = storage.get_session()
    engine = session.get_bind()
    session.close()
    return engine


def make_storage_read_only(storage=None) -> str:
    """Make every connection of ``storage`` (default: the loaded profile's) read-only; return the dialect name."""
    from sqlalchemy import event

    if storage is None:
        from aiida.manage import get_manager

        storage = get_manager().get_profile_storage()
    engine = _engine(storage)
    dialect = engine.dialect.name

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        if dialect == 'postgresql':
            cursor.execute('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY')
        elif dialect == 'sqlite':
            cursor.execute('PRAGMA query_only = ON')
        cursor.close()
        if dialect == 'postgresql':
            # psycopg opens a transaction for the SET; end it so the session setting holds for the next ones.
            dbapi_connection.commit()

    if dialect not in ('postgresql', 'sqlite'):
        raise RuntimeError(f'cannot open a {dialect} database read-only')
    event.listen(engine, 'connect', on_connect)
    # Connections opened before the hook (aiida checked the schema version) are closed, so none stays writable.
    engine.dispose()
    return dialect

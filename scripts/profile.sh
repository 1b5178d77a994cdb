#!/usr/bin/env bash
# Create (idempotently) the AiiDA profile the demo uses: storage core.psql_dos on PostgreSQL, broker core.rabbitmq.
#
# The database is made with psql, not `verdi presto --use-postgres`: AiiDA hard-codes the locale en_US.UTF-8 there,
# which minimal machines lack, so we create it from template0 with an explicit UTF8 encoding.
# Every setting can be changed through the environment; the defaults match docker-compose.yml and docs/installation.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERDI="$ROOT/.venv/bin/verdi"
PROFILE="${AIIDA_MULTISCALE_PROFILE:-multiscale}"
PGHOST="${AIIDA_MULTISCALE_PGHOST:-127.0.0.1}"
PGPORT="${AIIDA_MULTISCALE_PGPORT:-5432}"
PGSUPER="${AIIDA_MULTISCALE_PGSUPERUSER:-postgres}"
DBUSER="${AIIDA_MULTISCALE_DBUSER:-aiida_multiscale}"
DBPASS="${AIIDA_MULTISCALE_DBPASS:-aiida_multiscale}"
DBNAME="${AIIDA_MULTISCALE_DBNAME:-aiida_multiscale_${PROFILE}}"
BROKER_HOST="${AIIDA_MULTISCALE_BROKER_HOST:-127.0.0.1}"
BROKER_PORT="${AIIDA_MULTISCALE_BROKER_PORT:-5672}"
BROKER_USER="${AIIDA_MULTISCALE_BROKER_USER:-guest}"
BROKER_PASS="${AIIDA_MULTISCALE_BROKER_PASS:-guest}"
PSQL=(psql -h "$PGHOST" -p "$PGPORT" -U "$PGSUPER" -d postgres -v ON_ERROR_STOP=1 -qtA)

if "$VERDI" profile show "$PROFILE" >/dev/null 2>&1; then
    echo "profile: '$PROFILE' exists"
else
    "${PSQL[@]}" -c 'SELECT 1' >/dev/null 2>&1 || {
        echo "profile: cannot connect to PostgreSQL at $PGHOST:$PGPORT as '$PGSUPER'; is it running (make services)?" >&2; exit 1; }
    if [ -z "$("${PSQL[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$DBUSER'")" ]; then
        "${PSQL[@]}" -c "CREATE ROLE $DBUSER LOGIN PASSWORD '$DBPASS'"
    fi
    if [ -z "$("${PSQL[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$DBNAME'")" ]; then
        "${PSQL[@]}" -c "CREATE DATABASE $DBNAME OWNER $DBUSER ENCODING 'UTF8' TEMPLATE template0"
    fi
    REPO="${AIIDA_PATH:-$HOME}/.aiida/repository/$PROFILE"
    "$VERDI" profile setup core.psql_dos -n --profile-name "$PROFILE" --set-as-default \
        --email "${AIIDA_MULTISCALE_EMAIL:-multiscale@localhost}" --first-name Multiscale --last-name User \
        --institution "${AIIDA_MULTISCALE_INSTITUTION:-aiida-multiscale}" \
        --broker core.rabbitmq --database-engine postgresql_psycopg \
        --database-hostname "$PGHOST" --database-port "$PGPORT" --database-username "$DBUSER" \
        --database-password "$DBPASS" --database-name "$DBNAME" --repository-uri "file://$REPO" >/dev/null
    "$VERDI" profile configure-broker core.rabbitmq "$PROFILE" -n --broker-host "$BROKER_HOST" \
        --broker-port "$BROKER_PORT" --broker-username "$BROKER_USER" --broker-password "$BROKER_PASS" >/dev/null
    echo "profile: created '$PROFILE' (core.psql_dos on $PGHOST:$PGPORT/$DBNAME, broker core.rabbitmq)"
fi
"$VERDI" profile set-default "$PROFILE" >/dev/null 2>&1 || true
# runner.poll.interval 1: with the default (60 s) engine.run notices a finished child up to a minute late;
# daemon.timeout 20: the default 2 s times out under load; the RabbitMQ version warning is silenced because
# scripts/services.sh disables the consumer_timeout it warns about.
"$VERDI" config set runner.poll.interval 1 >/dev/null
"$VERDI" config set daemon.timeout 20 >/dev/null
"$VERDI" config set -g warnings.rabbitmq_version False >/dev/null
# AiiDA's caching for the rung calculations (pw.x, LAMMPS, MOOSE; docs/howto_caching.md): a chain that repeats the
# DFT and MD inputs of an earlier one reuses those calculations.  A caching setting already in the config is kept.
"$ROOT/.venv/bin/python" -c 'import sys; from aiida_multiscale.setup import configure_caching
configure_caching(sys.argv[1], log=lambda message: print("profile: " + message))' "$PROFILE"

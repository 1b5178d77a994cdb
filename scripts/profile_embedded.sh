#!/usr/bin/env bash
# Create (idempotently) an embedded AiiDA profile: storage core.sqlite_dos (SQLite + a file repository) and aiida-core's
# ZeroMQ broker core.zeromq, which lives in the daemon.  No PostgreSQL, no RabbitMQ: for a laptop or a machine where
# neither can be installed.  `make demo EMBEDDED=1` uses it.
#
# `verdi presto --use-zeromq` is explicit on purpose: a bare `verdi presto` picks RabbitMQ whenever one is running.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VERDI="$ROOT/.venv/bin/verdi"
PROFILE="${AIIDA_MULTISCALE_PROFILE:-multiscale-embedded}"

if "$VERDI" profile show "$PROFILE" >/dev/null 2>&1; then
    echo "profile: '$PROFILE' exists"
else
    "$VERDI" presto --use-zeromq --profile-name "$PROFILE" \
        --email "${AIIDA_MULTISCALE_EMAIL:-multiscale@localhost}" >/dev/null
    echo "profile: created '$PROFILE'"
fi
"$VERDI" profile set-default "$PROFILE" >/dev/null 2>&1 || true
# As for the PostgreSQL profile (scripts/profile.sh): fast polling and a daemon timeout that survives load.
"$VERDI" -p "$PROFILE" config set runner.poll.interval 1 >/dev/null
"$VERDI" -p "$PROFILE" config set daemon.timeout 20 >/dev/null
"$ROOT/.venv/bin/python" -c 'import sys; from aiida_multiscale.setup import configure_caching
configure_caching(sys.argv[1], log=lambda message: print("profile: " + message))' "$PROFILE"
# Say which storage and broker the demo runs on: the point of this profile is that it needs no service.
"$ROOT/.venv/bin/python" -c 'import sys; from aiida import load_profile
profile = load_profile(sys.argv[1], allow_switch=True)
print(f"profile: {profile.name!r} uses storage {profile.storage_backend} and broker {profile.process_control_backend}")' \
    "$PROFILE"

#!/usr/bin/env bash
# Make sure PostgreSQL and RabbitMQ answer on 127.0.0.1, starting them if this machine has them installed but stopped,
# and disable RabbitMQ's consumer_timeout (>= 3.8.15 kills consumers after 30 min, and long AiiDA processes with them).
set -euo pipefail
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
    if command -v pg_ctlcluster >/dev/null; then
        echo "services: starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    port_open 5432 || { echo "services: PostgreSQL does not answer on 127.0.0.1:5432; start it (pg_ctlcluster ... main start)" >&2; exit 1; }
fi

if ! port_open 5672; then
    if command -v rabbitmq-server >/dev/null; then
        echo "services: starting RabbitMQ"
        rabbitmq-server -detached || true
        rabbitmqctl await_startup >/dev/null 2>&1 || true
    fi
    port_open 5672 || { echo "services: RabbitMQ does not answer on 127.0.0.1:5672; start it (rabbitmq-server -detached)" >&2; exit 1; }
fi

# The consumer_timeout fix: persistent (advanced.config) and at runtime (no broker restart needed).
if command -v rabbitmqctl >/dev/null; then
    if [ -d /etc/rabbitmq ] && ! grep -qs consumer_timeout /etc/rabbitmq/advanced.config; then
        echo '[ {rabbit, [ {consumer_timeout, undefined} ]} ].' > /etc/rabbitmq/advanced.config 2>/dev/null || true
    fi
    current=$(rabbitmqctl eval 'application:get_env(rabbit, consumer_timeout).' 2>/dev/null || echo unknown)
    if [ "$current" != "{ok,undefined}" ]; then
        rabbitmqctl eval 'application:set_env(rabbit, consumer_timeout, undefined).' >/dev/null 2>&1 \
            && echo "services: RabbitMQ consumer_timeout disabled" \
            || echo "services: could not disable RabbitMQ consumer_timeout (processes longer than 30 min may die)"
    fi
fi
echo "services: PostgreSQL and RabbitMQ are up"

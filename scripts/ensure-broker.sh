#!/usr/bin/env bash
# Make sure a RabbitMQ broker with the management plugin answers on 127.0.0.1.
# Starts the local rabbitmq-server if it is installed and stopped; otherwise
# says how to start one with docker compose.
set -euo pipefail

amqp_port=${PIPELINE_BROKER_PORT:-5672}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open "$amqp_port"; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    echo "RabbitMQ is not running: starting the local rabbitmq-server..."
    rabbitmq-server -detached >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do port_open "$amqp_port" && break; sleep 1; done
    rabbitmqctl await_startup >/dev/null 2>&1 || true
  else
    echo "No RabbitMQ on 127.0.0.1:$amqp_port and rabbitmq-server is not installed." >&2
    echo "Start one with:  docker compose up -d rabbitmq" >&2
    exit 3
  fi
fi
port_open "$amqp_port" || { echo "RabbitMQ did not come up on 127.0.0.1:$amqp_port" >&2; exit 3; }

if ! port_open 15672; then
  if command -v rabbitmq-plugins >/dev/null 2>&1; then
    echo "Enabling the RabbitMQ management plugin (UI and HTTP API on :15672)..."
    rabbitmq-plugins enable rabbitmq_management >/dev/null
    for _ in $(seq 1 30); do port_open 15672 && break; sleep 1; done
  fi
fi
port_open 15672 || { echo "The management API on 127.0.0.1:15672 is not answering" >&2; exit 3; }
# RabbitMQ 3.10-4.x: a burst of deleted quorum queues with at-least-once
# dead-lettering (a test suite deleting its vhosts on a loaded machine) can
# exhaust the restart intensity of the broker's dead-letter worker supervisor;
# from then on every such queue fails to start its leader (INTERNAL_ERROR on
# declare). Upstream: rabbitmq/rabbitmq-server#16652. Restart it if it is gone.
if command -v rabbitmqctl >/dev/null 2>&1 \
    && [ "$(rabbitmqctl eval 'whereis(rabbit_fifo_dlx_sup).' 2>/dev/null)" = "undefined" ]; then
  echo "RabbitMQ's dead-letter worker supervisor is down (rabbitmq-server#16652): restarting it"
  rabbitmqctl eval 'supervisor:restart_child(rabbit_sup, rabbit_fifo_dlx_sup).' >/dev/null
fi
echo "RabbitMQ is up: amqp://127.0.0.1:$amqp_port  management UI: http://127.0.0.1:15672/"

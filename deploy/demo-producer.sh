#!/bin/sh
# The compose demo producer (`docker compose --profile demo up`): one orders
# event every DEMO_INTERVAL_S seconds through `pipeline publish`, some of them
# failing on purpose in the demo consumers (consumers/billing.py, shipping.py):
#   every 5th  payment_method flaky-card    billing retries twice, then succeeds
#   every 7th  payment_method expired-card  billing dead-letters it at once
#   every 11th country XX                   shipping climbs the whole ladder
# Stops on SIGTERM (docker compose stop) between two events.
set -u
trap 'echo "demo producer: stopped after $n events"; exit 0' TERM INT
n=0
while :; do
  n=$((n + 1))
  payment=card
  country=DE
  [ $((n % 5)) -eq 0 ] && payment=flaky-card
  [ $((n % 7)) -eq 0 ] && payment=expired-card
  [ $((n % 11)) -eq 0 ] && country=XX
  data=$(printf '{"order_id": "compose-%s-%d", "customer": "demo", "amount_cents": %d, "payment_method": "%s", "country": "%s"}' \
    "$(hostname)" "$n" $((n * 100 + 99)) "$payment" "$country")
  pipeline publish orders.order.placed --data "$data" >/dev/null || echo "demo producer: event $n not confirmed"
  sleep "${DEMO_INTERVAL_S:-1}" &
  wait $!
done

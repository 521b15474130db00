#!/usr/bin/env bash
# `make run`: the broker (detached, so it outlives a service crash), its topics, then the five
# services under honcho. Ctrl-C stops the services, then the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}"
export DISPATCH_DELAY_S="${DISPATCH_DELAY_S:-2}" DELIVERY_DELAY_S="${DELIVERY_DELAY_S:-3}"
mkdir -p .run

python deploy/kafka/kafkactl.py start
trap 'echo "stopping Kafka"; python deploy/kafka/kafkactl.py stop' EXIT
python deploy/kafka/kafkactl.py create-topics

# A storefront API key for trying the gateway, created once (only its hash is stored).
if [ ! -s .run/dev-api-key ]; then
  python -m orders.cli keys create --client dev-storefront --name "make run" --json \
    | python -c 'import json, sys; print(json.load(sys.stdin)["key"])' > .run/dev-api-key
fi
API_KEY="$(cat .run/dev-api-key)"
PROMETHEUS_STARTS=no
if ! command -v prometheus >/dev/null; then
  PROMETHEUS_URL="not installed: 'sudo apt-get install prometheus', then make run again"
elif (exec 3<>/dev/tcp/127.0.0.1/9090) 2>/dev/null; then
  PROMETHEUS_URL="NOT started: :9090 is taken (the system's Prometheus? 'sudo systemctl stop prometheus',
                   or add the jobs of deploy/prometheus/prometheus.yml to it)"
else
  PROMETHEUS_STARTS=yes
  PROMETHEUS_URL="http://127.0.0.1:9090  (rules and alerts from deploy/prometheus/)"
fi

cat <<INFO

  Order Pipeline is starting (state in .run/; 'make clean' resets it)
    gateway        http://127.0.0.1:8000/v1/orders
    API key        ${API_KEY}   (also in .run/dev-api-key; header: Authorization: Bearer …)
    API docs       http://127.0.0.1:8000/docs
    warehouse      http://127.0.0.1:8003/v1/returns/{return_id}/received
    metrics        orders :8000  inventory :8001  payments :8002  fulfillment :8003  notifications :8004
                   kpis :8005  (each at /metrics)
    Prometheus     ${PROMETHEUS_URL}
    dashboards     deploy/grafana/ (import into Grafana, see docs/OPERATIONS.md)
    Kafka          ${KAFKA_BOOTSTRAP_SERVERS}
  Try it:  make demo   (in another terminal), or the curl in README.md. Ctrl-C stops everything.

INFO
# Every Procfile entry, but our Prometheus only where it is installed (`make run` tries to)
# and :9090 is free (apt-get may have started the system's own Prometheus there).
processes="$(grep -oE '^[a-z]+' deploy/Procfile | tr '\n' ' ')"
if [ "$PROMETHEUS_STARTS" != yes ]; then
  processes="${processes/prometheus /}"
fi
honcho start -f deploy/Procfile -d . $processes

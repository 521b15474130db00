#!/usr/bin/env bash
# Validates the Prometheus setup the way Prometheus itself will read it: the config (which
# also loads its rule files), every rule file on its own, and every rule unit test.
# Runs every step even after a failure, so one run shows all problems; exits 1 if any failed.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null; then
  echo "promtool not found: install Prometheus' tools (Debian/Ubuntu: sudo apt-get install prometheus)" >&2
  exit 127
fi

failed=0
run() {
  echo "+ $*"
  "$@" || failed=1
}

shopt -s nullglob
rule_files=(rules/*.yml)
test_files=(tests/*.yml)
if [ ${#rule_files[@]} -eq 0 ] || [ ${#test_files[@]} -eq 0 ]; then
  echo "no rule files or no rule tests under $PWD" >&2
  exit 1
fi

run promtool check config prometheus.yml
run promtool check rules "${rule_files[@]}"
run promtool test rules "${test_files[@]}"

if [ "$failed" -ne 0 ]; then
  echo "deploy/prometheus: FAILED (see above)" >&2
  exit 1
fi
echo "deploy/prometheus: config, rules and rule tests OK"

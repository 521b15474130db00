#!/usr/bin/env bash
# Lint the dashboards with Grafana's dashboard-linter; --strict makes warnings fail too.
#
#   deploy/grafana/lint.sh                  every deploy/grafana/dashboards/*.json
#   deploy/grafana/lint.sh some/board.json  just those files
#
# Exceptions, each with its reason, live in a `.lint` file next to the dashboards (the
# linter reads it itself: dashboards/.lint).
#
# The linter is built once from the pinned Go module in tools/dashboard-linter (first build
# ~1.5 min, then cached) and rebuilt whenever that module's go.mod or go.sum changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
module="$repo/tools/dashboard-linter"
bin_dir="${XDG_CACHE_HOME:-$HOME/.cache}/order-pipeline/bin"
linter="$bin_dir/dashboard-linter"
stamp="$linter.sha256"

wanted="$(cat "$module/go.mod" "$module/go.sum" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$linter" || "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  if ! command -v go >/dev/null; then
    echo "lint.sh: 'go' is not on PATH; install Go >= 1.23 (https://go.dev/dl/) to build" \
      "Grafana's dashboard-linter from $module" >&2
    exit 1
  fi
  echo "lint.sh: building dashboard-linter into $linter" >&2
  mkdir -p "$bin_dir"
  # The linter's own module is not in the checksum database under this pseudo-version;
  # go.sum still pins its hash, so GONOSUMDB only skips the lookup, not the check.
  (cd "$module" &&
    GONOSUMDB=github.com/grafana/dashboard-linter GOFLAGS=-mod=mod \
      go build -o "$linter.$$" github.com/grafana/dashboard-linter)
  mv -f "$linter.$$" "$linter"
  echo "$wanted" >"$stamp"
fi

if (($# == 0)); then
  shopt -s nullglob
  set -- "$here"/dashboards/*.json
  if (($# == 0)); then
    echo "lint.sh: no dashboards in $here/dashboards" >&2
    exit 1
  fi
fi

status=0
for dashboard in "$@"; do
  # The linter lists every rule it ran; show that only when something failed.
  if report="$("$linter" lint --strict "$dashboard" 2>&1)"; then
    echo "ok   ${dashboard#"$repo"/}"
  else
    echo "$report" | grep -v '^Checks that' >&2 || true
    echo "FAIL ${dashboard#"$repo"/}" >&2
    status=1
  fi
done
exit "$status"

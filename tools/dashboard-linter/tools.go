//go:build tools

// Package tools pins Grafana's dashboard-linter for deploy/grafana/lint.sh. The linter has
// no release the module proxy lists (`go install ...@latest` fails), so go.mod requires a
// pseudo-version of its main branch and go.sum pins every dependency.
package tools

import _ "github.com/grafana/dashboard-linter"

#!/usr/bin/env bash
# Checks deploy/systemd/amtsbote.service with systemd's own tools (make deploy-check,
# in make test): the unit parses without a single warning (an unknown or misspelt
# setting is only a warning to systemd, and then silently missing from the sandbox),
# its ExecStart names an executable (the built binary stands in for
# /usr/local/bin/amtsbote), and its sandbox scores at most 2.0 of 10 ("OK") on
# `systemd-analyze security`. What this cannot show: the gateway running under the
# sandbox, which needs a machine booted with systemd (docs/operations.md says so).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v systemd-analyze >/dev/null || { echo "check-systemd: systemd-analyze is missing (apt-get install systemd)" >&2; exit 1; }
[ -x bin/amtsbote ] || { echo "check-systemd: build bin/amtsbote first (make build)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unit="$tmp/amtsbote.service"
sed "s|/usr/local/bin/amtsbote|$PWD/bin/amtsbote|" deploy/systemd/amtsbote.service >"$unit"
if ! out=$(systemd-analyze verify "$unit" 2>&1) || [ -n "$out" ]; then
  echo "check-systemd: systemd-analyze verify complains about deploy/systemd/amtsbote.service:" >&2
  echo "$out" >&2
  exit 1
fi
if ! systemd-analyze security --offline=true --threshold=20 "$unit" >"$tmp/security.txt" 2>&1; then
  cat "$tmp/security.txt" >&2
  echo "check-systemd: the sandbox of deploy/systemd/amtsbote.service scores above 2.0" >&2
  exit 1
fi
grep 'Overall exposure level' "$tmp/security.txt"

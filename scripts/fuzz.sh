#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 30s).
# A failure leaves the crashing input under the package's testdata/fuzz/ and fails.
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
targets=$(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v node_modules | sort)
count=0
for f in $targets; do
  dir=$(dirname "$f")
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
    echo "== fuzz $dir $name ($fuzztime)"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir"
    count=$((count+1))
  done
done
echo "fuzz: $count targets, $fuzztime each: 0 failed"

#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for the given time each
# (default 20s): scripts/fuzz.sh 1m
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-20s}
fail=0
while IFS= read -r line; do
	file=${line%%:*}
	name=$(sed -E 's/^.*func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$line")
	pkg=./$(dirname "$file")
	echo "== $pkg $name ($t)"
	if ! go test -run '^$' -fuzz "^${name}\$" -fuzztime "$t" "$pkg"; then
		fail=1
	fi
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' internal test | sort)
exit $fail

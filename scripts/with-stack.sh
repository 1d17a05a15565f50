#!/usr/bin/env bash
# Runs a command with the local stack up. Starts the stack if it is not running and, in that case,
# stops it again afterwards, whatever the command's outcome. Exits with the command's status.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
started=0
status=$("$root/scripts/stack.sh" status)
if grep -q ': stopped' <<<"$status"; then
  "$root/scripts/stack.sh" up || { "$root/scripts/stack.sh" down; exit 1; }
  started=1
else
  "$root/scripts/stack.sh" up || exit 1
fi
cleanup() { [ "$started" = 1 ] && "$root/scripts/stack.sh" down; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$@"

#!/usr/bin/env bash
# The whole approval loop on one machine: starts Warden with this
# directory's warden.toml, runs the agent platform (platform.rs) until it
# waits for a person, approves its task with wardenctl as the approver,
# and lets the platform finish. Exits with the platform's exit code.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build -q --bin warden --bin wardenctl
cargo build -q -p warden-client --example approval_loop

data="$(mktemp -d)"
trap 'kill "$server" "$platform" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"' EXIT

decision=127.0.0.1:50161
admin=127.0.0.1:50162
WARDEN_CONFIG=examples/approval-loop/warden.toml target/debug/warden serve \
  --data-dir "$data/state" --decision-addr "$decision" --admin-addr "$admin" \
  --http-addr 127.0.0.1:0 --ops-addr 127.0.0.1:0 >"$data/warden.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/${decision%:*}/${decision#*:}") 2>/dev/null && break
  kill -0 "$server" 2>/dev/null || { cat "$data/warden.log" >&2; exit 1; }
  sleep 0.1
done

WARDEN_DECISION="http://$decision" WARDEN_TOKEN=example-platform-token-0123456789 \
  target/debug/examples/approval_loop >"$data/platform.log" 2>&1 &
platform=$!

# The platform prints its task once it has asked; a person then decides.
task=""
for _ in $(seq 1 300); do
  task=$(sed -n 's/^task: \(arq_[^ ]*\) pending$/\1/p' "$data/platform.log")
  [ -n "$task" ] && break
  kill -0 "$platform" 2>/dev/null || break
  sleep 0.1
done
cat "$data/platform.log"
if [ -z "$task" ]; then echo "the platform never asked for approval" >&2; cat "$data/warden.log" >&2; exit 1; fi

export WARDEN_ADMIN_ADDR="http://$admin" WARDEN_TOKEN=example-approver-token-0123456789
target/debug/wardenctl approvals show "$task"
target/debug/wardenctl approvals approve "$task" --note "ok for the close" --valid-for 10m

status=0
wait "$platform" || status=$?
cat "$data/platform.log"
exit "$status"

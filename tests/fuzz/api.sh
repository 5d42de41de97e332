#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis (from PyPI): every
# operation is called with examples, boundary values and random inputs, authenticated as
# admin, and the run fails on any 5xx, any undocumented status, or any response that does
# not fit the document.
#
#   tests/fuzz/api.sh          # a bounded run (60 s; CI gives it 40)
#   tests/fuzz/api.sh 1800     # the long form: a 30-minute budget
#
# `GET /v1/events` is left out: it is a stream that never ends, which a fuzzer can only time
# out on (tests/api_router.rs follows it). It builds the debug binary (or takes $JOBS_FUZZ_BIN), serves a temp project on a free port and removes it after.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
budget=${1:-60}
venv=${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis>=4.32,<5'
fi
# JOBS_FUZZ_BIN: a jobctl already built (CI passes the one `cargo test` built), else a debug build.
jobs=${JOBS_FUZZ_BIN:-}
if [ -z "$jobs" ]; then
  cargo build --quiet --manifest-path "$root/Cargo.toml"
  jobs="$root/target/debug/jobctl"
fi
jobs=$(cd "$(dirname "$jobs")" && pwd)/$(basename "$jobs")

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/jobs.d"
cat > "$work/jobs.d/deploy.yaml" <<'YAML'
description: A job with parameters
command: ["true"]
params:
  branch: {required: true}
  env: {default: staging}
concurrency: allow
YAML
cat > "$work/jobs.d/nightly.yaml" <<'YAML'
schedule: "0 3 * * *"
timezone: Europe/Berlin
command: ["true"]
YAML
cat > "$work/jobs.d/hook.yaml" <<'YAML'
command: ["true"]
webhook: {secret_env: FUZZ_HOOK_SECRET}
YAML
admin=fuzz-admin-token-0123456789
printf 'admin %s\nread fuzz-read-token-0123456789\n' "$admin" > "$work/tokens"
chmod 600 "$work/tokens"

cd "$work"
FUZZ_HOOK_SECRET=fuzz-secret "$jobs" serve --listen 127.0.0.1:0 --token-file tokens \
  --log-format json 2> "$work/serve.log" &
pid=$!
addr=""
for _ in $(seq 1 100); do
  addr=$(sed -n 's/.*"listen":"\([^"]*\)".*/\1/p' "$work/serve.log" | head -1)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { cat "$work/serve.log"; echo "the server did not start" >&2; exit 1; }
# A run, so the run endpoints have something to read.
JOBS_SERVER="http://$addr" JOBS_TOKEN=$admin "$jobs" trigger deploy --param branch=main --wait >/dev/null

"$venv/bin/schemathesis" run "http://$addr/v1/openapi.json" \
  --header "Authorization: Bearer $admin" \
  --exclude-path /v1/events \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-time "$budget" \
  --request-timeout 10 \
  --suppress-health-check all \
  --warnings off
status=$?
if grep -q '"level":"ERROR"' "$work/serve.log"; then
  echo "the server logged errors while fuzzed:" >&2
  grep '"level":"ERROR"' "$work/serve.log" | head -20 >&2
  exit 1
fi
exit $status

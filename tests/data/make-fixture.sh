#!/bin/bash
# make.sh N: builds tests/data/ledger-vN.db with the binary of schema version N.
set -e
n=$1; bin=/tmp/fixtures/jobs-v$n
w=$(mktemp -d /tmp/fixtures/work-v$n.XXXX); cd $w
mkdir jobs.d
cat > jobs.d/hello.yaml <<'Y'
description: Says hello on the hour
schedule: "0 * * * *"
timezone: Europe/Berlin
command: [sh, -c, "echo hello from $JOBS_JOB; echo a warning >&2"]
tags: [fixture]
Y
cat > jobs.d/fails.yaml <<'Y'
description: Always fails
command: [sh, -c, "echo about to fail; exit 3"]
Y
cat > jobs.d/every.yaml <<'Y'
schedule:
  every: 15m
command: [echo, tick]
concurrency: forbid
Y
if [ "$n" -ge 4 ]; then
cat > jobs.d/after.yaml <<'Y'
schedule:
  after: [hello]
command: [echo, after hello]
repeat:
  times: 3
Y
cat > jobs.d/gated.yaml <<'Y'
depends_on: [fails]
command: [echo, gated]
Y
fi
export JOBS_LEDGER=$w/ledger.db JOBS_DIR=$w/jobs.d
export JOBS_NOW=2026-11-20T10:00:00Z
$bin apply
if [ "$n" -ge 2 ]; then
  export JOBS_NOW=2026-11-20T10:05:00Z
  $bin run hello
  export JOBS_NOW=2026-11-20T10:06:00Z
  $bin run fails || true
  $bin pause every
  export JOBS_NOW=2026-11-20T10:06:30Z
  $bin trigger hello
fi
if [ "$n" -ge 4 ]; then
  $bin trigger gated
fi
# Editing a job makes a second revision.
sed -i 's/tick/tock/' jobs.d/every.yaml
export JOBS_NOW=2026-11-20T10:07:00Z
$bin apply
sqlite3 ledger.db 'PRAGMA wal_checkpoint(TRUNCATE); PRAGMA user_version;' 2>/dev/null || true
cp ledger.db /tmp/fixtures/ledger-v$n.db
ls -la ledger.db*

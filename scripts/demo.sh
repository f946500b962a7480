#!/usr/bin/env bash
# The ferry demo (README's first command): a web tier on three lab hosts in
# two datacenters in front of a PostgreSQL host, built, deployed, upgraded,
# protected by a canary, and rolled back, over real SSH. Run as root.
#
# Every step checks its own result and the script stops at the first
# surprise. The lab stays up afterwards; `ferry lab down sites/demo` removes it.
# FERRY=path/to/ferry uses that binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if [ -z "${FERRY:-}" ]; then
  echo "building ferry (release)…"
  cargo build --release --quiet
  FERRY=$PWD/target/release/ferry
fi
ferry() { "$FERRY" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

# What the hosts run comes from their closures (each service sees only its
# class's package tree on /usr); the demo probes them from the deployer,
# across the lab bridge, with the deployer's own tools.
get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode().strip())' "http://$1:8080$2"; }
psql_db() { /usr/lib/postgresql/15/bin/psql -h 10.237.1.2 -U postgres -tA -c "$1"; }
web_hosts=(10.237.1.3 10.237.1.4 10.237.1.5)
# Every web host answers GET / with this release.
all_on_release() {
  local h answer
  for h in "${web_hosts[@]}"; do
    answer=$(get "$h" /)
    echo "GET http://$h:8080/ → $answer"
    case "$answer" in *"release $1"*) ;; *) fail "web host $h does not answer with release $1";; esac
  done
}
recorded() { sed -n 's/^recorded site generation \([0-9]*\)$/\1/p' "$1" | tail -n 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

step "0. a fresh lab: db1, web1, web2 (datacenter dc1) and web3 (dc2), each a Debian root of its own booting real systemd, with no PostgreSQL or Python; services see only their class's package tree on /usr"
ferry lab down sites/demo >/dev/null 2>&1 || true
ferry lab up sites/demo

step "0b. pin the Debian packages the site runs (PostgreSQL 15, Python 3, busybox, …) from this machine's apt sources"
for release in site v2 v3; do ferry lock "sites/demo/$release.conf" | tail -n 1; done

step "1. deploy release 1: the db class before the web class, then one canary web host, then the rest"
ferry plan sites/demo | tail -n 12
ferry deploy sites/demo --yes | tee "$out"
first=$(recorded "$out")
[ -n "$first" ] || fail "deploy recorded no site generation"
all_on_release 1

step "2. everything the site runs, across all hosts, with the cross-host service edge"
ferry closure sites/demo --requisites | tee "$out"
grep -q '^web.app → db.postgres' "$out" || fail "closure shows no web.app → db.postgres edge"

step "3. upgrade to release 2: its pre_upgrade hook migrates the schema (a new nullable column) before the release starts, canary first"
ferry deploy sites/demo/v2.conf --yes
all_on_release 2
psql_db "SELECT column_name FROM information_schema.columns WHERE table_name = 'visits' AND column_name = 'served_by'" | grep -q served_by \
  || fail "the release 2 migration did not add visits.served_by"
echo "schema migrated: visits.served_by exists"
written=$(psql_db "SELECT count(*) FROM visits WHERE served_by IS NOT NULL")
echo "visits written by release 2: $written"

step "4. a broken release 3: the canary fails its health check, is rolled back, and no other host is touched"
set +e
ferry deploy sites/demo/v3.conf --yes | tee "$out"
code=${PIPESTATUS[0]}
set -e
[ "$code" -eq 3 ] || fail "deploying the broken release should exit 3 (rolled back), got $code"
grep -q 'canary failed on web1' "$out" || fail "the rollout did not stop at the canary"
[ "$(grep -c 'not touched' "$out")" -eq 2 ] || fail "hosts other than the canary were touched"
all_on_release 2

step "5. site-wide rollback to the first site generation ($first): no rebuild, the closures are still on the hosts"
ferry generations sites/demo | grep -E '^ +[0-9]+ ' | tail -n 5
ferry rollback sites/demo --to "$first" --yes
all_on_release 1
kept=$(psql_db "SELECT count(*) FROM visits WHERE served_by IS NOT NULL")
echo "visits written by release 2, still in the database after the rollback: $kept"
[ "$kept" -ge "$written" ] && [ "$written" -gt 0 ] || fail "data written during release 2 was lost"

step "done: the lab is still up (ssh -F /run/ferry-lab/demo/ssh_config web1); remove it with: ferry lab down sites/demo"

#!/usr/bin/env bash
# Deploy benchmark (not a test; run as root). Prints ratios measured in the
# same run, against the same lab hosts:
#   (a) a full deploy (copy + activate, fresh hosts) of HOSTS hosts vs of 1 host;
#   (b) a no-op redeploy of the HOSTS hosts: ferry vs Ansible running an
#       equivalent playbook (the same files copied, the same services checked).
#
# Usage: cargo build --release && sudo benches/deploy-vs-ansible.sh
#   FERRY=path/to/ferry  HOSTS=50  FILES=40  PARALLEL=10  (environment overrides)
#
# The site: one class `app` whose system holds FILES config files (a package
# built from ./files) served by two busybox httpd services on ports 8080
# (HTTP health check) and 8081 (TCP health check). The playbook copies the
# same files (as plain files, to the host's private /ferry/var/ansible-bench)
# and checks the same services: `uri` on 8080, `wait_for` on 8081.
#
# What a no-op does: ferry asks every host's agent what it runs (one SSH
# connection per host, the agent reports the system and its services'
# processes), sees nothing to change, and records a site generation. Ansible
# stats every file on every host (checksums) and checks both ports. Both run
# PARALLEL hosts at once (`--max-parallel` / `--forks`); Ansible gets its best
# settings (pipelining, no fact gathering, SSH ControlPersist kept from its
# warm-up run). The timed runs are after an untimed warm-up on both sides.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
FERRY=${FERRY:-$here/target/release/ferry}
HOSTS=${HOSTS:-50}
FILES=${FILES:-40}
PARALLEL=${PARALLEL:-10}
SUBNET=10.237.59
SITE=bench-deploy-ansible

[ "$(id -u)" = 0 ] || { echo "run as root (the lab needs namespaces)" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "no ferry binary at $FERRY (cargo build --release)" >&2; exit 2; }
[ "$HOSTS" -ge 1 ] && [ "$HOSTS" -le 250 ] || { echo "HOSTS must be 1..250" >&2; exit 2; }
if ! command -v ansible-playbook >/dev/null; then
  echo "== installing Debian's ansible"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ansible >/dev/null
fi

work=$(mktemp -d /tmp/ferry-bench-ansible.XXXXXX)
site=$work/site
mkdir -p "$site/files" "$work/ansible"
ferry() { "$FERRY" "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.2f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }
cleanup() {
  ferry lab down "$site" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- the site ---------------------------------------------------------------
for i in $(seq -f %02g 1 "$FILES"); do
  {
    echo "# f$i.conf — configuration file $i of the benchmark application"
    for line in $(seq 1 60); do echo "setting_${i}_$line = value $line of file $i"; done
  } > "$site/files/f$i.conf"
done
{
  echo "import \"$here/host-classes/std.conf\""
  echo "site = \"$SITE\""
  cat <<'EOF'
package appfiles {
  src = path("./files")
  build = """
    mkdir -p $out/etc/app
    cp $src/* $out/etc/app/
  """
}
class app {
  include std.base
  packages = [appfiles]
  service web {
    exec = "${std.busybox}/bin/httpd -f -p 8080 -h ${appfiles}/etc/app"
    health = http("http://127.0.0.1:8080/f01.conf", timeout = 2s, retries = 25, interval = 200ms)
  }
  service api {
    exec = "${std.busybox}/bin/httpd -f -p 8081 -h ${appfiles}/etc/app"
    health = tcp(8081, timeout = 2s, retries = 25, interval = 200ms)
  }
}
rollout { batch = 100%  on_failure = continue }
EOF
  echo 'inventory = lab {'
  echo "  subnet = \"$SUBNET.0/24\""
  echo '  hosts = ['
  for i in $(seq -f %02g 1 "$HOSTS"); do
    echo "    { name = \"h$i\", class = app, labels = { datacenter = \"dc$((10#$i % 2 + 1))\" } },"
  done
  echo '  ]'
  echo '}'
} > "$site/site.conf"
first=h$(seq -f %02g 1 "$HOSTS" | head -n 1)

# --- the equivalent playbook ------------------------------------------------
{
  echo '[lab]'
  for i in $(seq -f %02g 1 "$HOSTS"); do echo "h$i"; done
  echo '[lab:vars]'
  echo 'ansible_user=root'
  echo 'ansible_python_interpreter=/usr/bin/python3'
} > "$work/ansible/inventory"
cat > "$work/ansible/playbook.yml" <<EOF
- hosts: lab
  gather_facts: false
  tasks:
    - name: the application's config files
      ansible.builtin.copy:
        src: $site/files/
        dest: /ferry/var/ansible-bench/etc/app/
        mode: "0644"
    - name: the web service answers over HTTP
      ansible.builtin.uri:
        url: http://127.0.0.1:8080/f01.conf
        status_code: 200
    - name: the api service listens
      ansible.builtin.wait_for:
        host: 127.0.0.1
        port: 8081
        timeout: 5
EOF
cfg=/run/ferry-lab/$SITE/ssh_config
playbook() {
  ANSIBLE_FORKS=$PARALLEL ANSIBLE_PIPELINING=True ANSIBLE_HOST_KEY_CHECKING=True \
  ANSIBLE_LOCAL_TEMP=$work/ansible/tmp ANSIBLE_SSH_CONTROL_PATH_DIR=$work/ansible/cp \
  ANSIBLE_RETRY_FILES_ENABLED=False ANSIBLE_NOCOLOR=1 \
    ansible-playbook -i "$work/ansible/inventory" --ssh-common-args "-F $cfg" \
    "$work/ansible/playbook.yml" > "$1" 2>&1
}
# Every host's recap line says ok=3, and none failed or was unreachable
# (and, for a no-op, nothing changed).
check_recap() {
  local log=$1 want_changed=$2
  local good
  good=$(grep -cE "^h[0-9]+ +: ok=3 +changed=$want_changed +unreachable=0 +failed=0" "$log" || true)
  [ "$good" -eq "$HOSTS" ] || { echo "ansible run not as expected ($good of $HOSTS hosts ok):" >&2; tail -n 40 "$log" >&2; exit 1; }
}

# --- (a) full deploy: 1 host vs HOSTS hosts, fresh hosts each time -----------
echo "== building the site (untimed; both deploys use the same build)"
ferry build "$site" >/dev/null
ferry lab down "$site" >/dev/null 2>&1 || true

echo "== (a) full deploy of 1 fresh host"
ferry lab up "$site" >/dev/null
t0=$(now)
ferry deploy "$site" --on "$first" --yes --max-parallel "$PARALLEL" > "$work/one.out" || { cat "$work/one.out"; exit 1; }
t_one=$(since "$t0")
grep -q "^$first .*activated generation 1" "$work/one.out" || { cat "$work/one.out"; exit 1; }
echo "   1 host: ${t_one} s"
ferry lab down "$site" >/dev/null

echo "== (a) full deploy of $HOSTS fresh hosts (--max-parallel $PARALLEL)"
ferry lab up "$site" >/dev/null
t0=$(now)
ferry deploy "$site" --yes --max-parallel "$PARALLEL" > "$work/all.out" || { cat "$work/all.out"; exit 1; }
t_all=$(since "$t0")
activated=$(grep -c "activated generation 1" "$work/all.out" || true)
[ "$activated" -eq "$HOSTS" ] || { cat "$work/all.out"; echo "only $activated of $HOSTS hosts activated" >&2; exit 1; }
echo "   $HOSTS hosts: ${t_all} s"

# --- (b) no-op redeploy: ferry vs ansible ------------------------------------
echo "== (b) no-op redeploy of $HOSTS hosts"
ferry deploy "$site" --yes --max-parallel "$PARALLEL" > "$work/noop-warm.out"
t0=$(now)
ferry deploy "$site" --yes --max-parallel "$PARALLEL" > "$work/noop.out" || { cat "$work/noop.out"; exit 1; }
t_ferry=$(since "$t0")
unchanged=$(grep -c " unchanged$" "$work/noop.out" || true)
[ "$unchanged" -eq "$HOSTS" ] || { cat "$work/noop.out"; echo "the no-op deploy changed something" >&2; exit 1; }
echo "   ferry deploy (nothing to do): ${t_ferry} s"

echo "   ansible-playbook warm-up (copies the files once, untimed)…"
playbook "$work/ansible-warm.log"
check_recap "$work/ansible-warm.log" '[0-9]+'
t0=$(now)
playbook "$work/ansible-noop.log"
t_ansible=$(since "$t0")
check_recap "$work/ansible-noop.log" 0
echo "   ansible-playbook (nothing to do): ${t_ansible} s  ($(ansible --version | head -n 1))"

echo
echo "== results ($HOSTS lab hosts, $FILES files per host, $PARALLEL hosts at a time)"
echo "full deploy, $HOSTS hosts vs 1 host:        $(ratio "$t_all" "$t_one")× the time of one host (${t_all} s vs ${t_one} s)"
echo "no-op redeploy, ansible vs ferry:      ferry is $(ratio "$t_ansible" "$t_ferry")× faster (${t_ansible} s vs ${t_ferry} s; goal ≥ 20×)"

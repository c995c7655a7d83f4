#!/bin/sh
# A demo web host's entrypoint (Dockerfile beside; PID 1 is compose's `init: true`).
#
#   start         take this host's SSH host key and the engine's public key from keygen's
#                 volume, start node_exporter, the CPU exporter and nginx, then run sshd
#   healthcheck   both exporters answer (nginx is left out: its being down is a scenario)
#   anything else run as given
#
# DEMO_HOST names this host (web1, ...); keygen made its keys under $DEMO_KEYS/$DEMO_HOST.
set -eu

keys="${DEMO_KEYS:-/etc/autosre-demo}"

case "${1:-start}" in
    start) ;;
    healthcheck)
        exec python3 -c '
import urllib.request
for port in (9100, 9101):
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).close()
'
        ;;
    *) exec "$@" ;;
esac

host="${DEMO_HOST:?DEMO_HOST must name this host, as keygen knows it}"
if [ ! -s "$keys/$host/ssh_host_ed25519_key" ] || [ ! -s "$keys/authorized_keys" ]; then
    echo "no keys for $host in $keys: did the keygen service run?" >&2
    exit 1
fi
install -m 0600 "$keys/$host/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
install -m 0644 "$keys/$host/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
install -d -o autosre -g autosre -m 0700 /home/autosre/.ssh
install -o autosre -g autosre -m 0600 "$keys/authorized_keys" /home/autosre/.ssh/authorized_keys

# node_exporter with the flags the site playbook wrote (its CPU collector is off: in a
# container /proc/stat is the whole machine's CPU). This container's own CPU comes from
# its cgroup, under the same metric name, on port 9101.
ARGS=""
if [ -r /etc/default/prometheus-node-exporter ]; then
    # shellcheck source=/dev/null # written by the site playbook at build time
    . /etc/default/prometheus-node-exporter
fi
# shellcheck disable=SC2086 # ARGS is a list of flags, split as the init script splits it
prometheus-node-exporter ${ARGS:---web.listen-address=:9100 --no-collector.cpu} &
cgroup-cpu-exporter --port 9101 &
service nginx start
exec /usr/sbin/sshd -D -e

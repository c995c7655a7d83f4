#!/bin/sh
# The demo web host's provisioning (Dockerfile beside: one RUN step): the project's own
# site playbook (playbooks/site.yml, the `web` play) installs and configures nginx, its
# site, node_exporter's flags and the known-good snapshot rollback_nginx.yml restores,
# exactly as on a Debian VM. Services are neither started nor reloaded here (a build has no
# running system; inventory.yml says so): the entrypoint starts them from what it wrote.
#
#   sh provision.sh [ansible-playbook options]     # e.g. -e nginx_listen=8080
#
# ansible-core is the project's own pin (requirements.txt), in a throwaway venv removed in
# the same step, with apt's lists and Ansible's temp files: none of them reaches a layer
# (the few KB of playbooks COPY brought stay, hidden, in the layers before).
set -eu

dir=$(cd "$(dirname "$0")" && pwd)
pin=$(grep -E '^ansible-core==' "$dir/requirements.txt") || {
    echo "provision: no ansible-core pin in $dir/requirements.txt" >&2
    exit 1
}

python3 -m venv "$dir/venv"
"$dir/venv/bin/pip" install --no-cache-dir --disable-pip-version-check --quiet "$pin"

# A slim image: apt installs what the roles ask for without its recommendations
# (node_exporter's would bring smartmontools and friends), as the Dockerfile's own installs.
norecs=/etc/apt/apt.conf.d/99autosre-provision
echo 'APT::Install-Recommends "false";' >"$norecs"

# Locally, through the inventory beside this script.
ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 \
    "$dir/venv/bin/ansible-playbook" -i "$dir/inventory.yml" "$dir/playbooks/site.yml" \
    --limit web "$@"

rm -rf "$dir" "$norecs" "${HOME:-/root}/.ansible" /var/lib/apt/lists/*
apt-get clean

#!/bin/sh
# keygen (docker-compose.yml): makes the demo's secrets at `docker compose up`, once, into
# named volumes; none is ever in git or in an image. It runs as root in the AutoSRE image
# (ssh-keygen from openssh-client) and hands each file to whoever reads it:
#
#   $KEYS_DIR/client   the engine's SSH key, and known_hosts naming each host's key
#                      (engine, web: /home/autosre/.ssh, owned by the autosre user)
#   $KEYS_DIR/hosts    authorized_keys (the engine's public key) and HOST/ssh_host_ed25519_key
#                      for each of $DEMO_HOSTS (the web hosts, read as root)
#   $KEYS_DIR/db       password (postgres' POSTGRES_PASSWORD_FILE) and pgpass (libpq's
#                      PGPASSFILE for the engine's postgresql:// URL, which holds no password)
#   $KEYS_DIR/alerts   token: Alertmanager's bearer token for POST /api/v1/alerts, and the
#                      web UI's AUTOSRE_ALERTS_TOKEN_FILE
#
# Existing keys are kept, so a restart changes nothing; `docker compose down -v` forgets them.
set -eu
umask 077

keys="${KEYS_DIR:-/keys}"
owner="${KEY_OWNER:-autosre}"        # the engine's user (uid 10001 in the image)
alerts_reader="${ALERTS_UID:-65534}" # Alertmanager's image runs as nobody
hosts="${DEMO_HOSTS:?DEMO_HOSTS must list the web hosts}"
db_host="${DB_HOST:-postgres}"
db_name="${DB_NAME:-autosre}"
db_user="${DB_USER:-autosre}"

uid=$(id -u "$owner")
gid=$(id -g "$owner")

# A random secret in hex: nothing in it needs quoting in pgpass or a header.
random_hex() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

mkdir -p "$keys/client" "$keys/hosts" "$keys/db" "$keys/alerts"

if [ ! -s "$keys/client/id_ed25519" ]; then
    ssh-keygen -q -t ed25519 -N '' -C "autosre-engine" -f "$keys/client/id_ed25519"
fi
cp "$keys/client/id_ed25519.pub" "$keys/hosts/authorized_keys"
chmod 0644 "$keys/hosts/authorized_keys"

: >"$keys/client/known_hosts.new"
for host in $hosts; do
    case "$host" in
        "" | -* | *[!a-z0-9-]*)
            echo "keygen: not a host name: $host" >&2
            exit 2
            ;;
    esac
    mkdir -p "$keys/hosts/$host"
    if [ ! -s "$keys/hosts/$host/ssh_host_ed25519_key" ]; then
        ssh-keygen -q -t ed25519 -N '' -C "$host" -f "$keys/hosts/$host/ssh_host_ed25519_key"
    fi
    # known_hosts: "NAME TYPE KEY", the name as the inventory reaches the host.
    read -r type key _ <"$keys/hosts/$host/ssh_host_ed25519_key.pub"
    printf '%s %s %s\n' "$host" "$type" "$key" >>"$keys/client/known_hosts.new"
done
mv "$keys/client/known_hosts.new" "$keys/client/known_hosts"

if [ ! -s "$keys/db/password" ]; then
    random_hex >"$keys/db/password"
fi
printf '%s:5432:%s:%s:%s\n' "$db_host" "$db_name" "$db_user" "$(cat "$keys/db/password")" \
    >"$keys/db/pgpass"

if [ ! -s "$keys/alerts/token" ]; then
    random_hex >"$keys/alerts/token"
fi

chown -R "$uid:$gid" "$keys/client" "$keys/db"
chmod 0700 "$keys/client"
chmod 0644 "$keys/client/id_ed25519.pub" "$keys/client/known_hosts"
chmod 0755 "$keys/db"
# Alertmanager (nobody) owns the token, the web UI (the autosre group) may read it.
chown "$alerts_reader:$gid" "$keys/alerts/token"
chmod 0440 "$keys/alerts/token"
chmod 0755 "$keys/alerts" "$keys/hosts"
echo "keygen: keys ready for the engine and for: $hosts"

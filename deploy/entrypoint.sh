#!/bin/sh
# The AutoSRE image's entrypoint (Dockerfile), run under tini.
#
#   (nothing), run ...       autosre run ...            the engine
#   web ..., db ..., ...     autosre web ..., ...       any autosre subcommand
#   autosre ARGS             autosre ARGS
#   healthcheck              this container's health (the image's HEALTHCHECK)
#   anything else            run as given (sh, python, ...)
#
# `run` and `web` send their log lines (stderr) to stdout too, and leave a note of what this
# container serves for the health check. Settings come from the environment only.
set -eu

# What this container serves (`run`, or `web HOST PORT`), for `healthcheck`.
ROLE_FILE="${TMPDIR:-/tmp}/autosre-entrypoint.role"
# autosre's subcommands (autosre --help; tests/deploy/test_image.py keeps them in step).
SUBCOMMANDS=" run incidents approvals users tokens web maintenance host runs prune eval doctor playbook policy chaos db "

# The address and port `autosre web ARGS` will listen on, as "HOST PORT".
web_address() {
    host=127.0.0.1
    port=8080
    while [ $# -gt 0 ]; do
        case "$1" in
            --host) host="${2:-}"; shift ;;
            --host=*) host="${1#--host=}" ;;
            --port) port="${2:-}"; shift ;;
            --port=*) port="${1#--port=}" ;;
        esac
        shift
    done
    # Bound to every address: ask on the loopback one.
    case "$host" in
        0.0.0.0 | "" | "::" | "[::]") host=127.0.0.1 ;;
    esac
    printf '%s %s\n' "$host" "$port"
}

healthcheck() {
    [ -s "$ROLE_FILE" ] || exit 0 # a one-shot command (db upgrade, users add): nothing to watch
    read -r role host port <"$ROLE_FILE"
    case "$role" in
        web)
            # The UI answers and its store does: /healthz is 200 (503 when the store is down).
            exec python - "$host" "$port" <<'EOF'
import sys
import urllib.request

host, port = sys.argv[1], sys.argv[2]
if ":" in host and not host.startswith("["):
    host = f"[{host}]"
with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as answer:
    sys.exit(0 if answer.status == 200 else 1)
EOF
            ;;
        run)
            # The engine ticks: its last tick, as stored, is no older than /healthz allows.
            exec python - <<'EOF'
import sys
import time

from engine.read.engine_stats import read_engine_stats
from engine.settings import load_settings
from engine.store import open_store
from webui.health import tick_late

settings = load_settings()
stats = read_engine_stats(open_store(settings.database_url))
age = None if stats.last_tick is None else time.time() - stats.last_tick
if tick_late(age, settings.interval, stats.publish_every):
    late = "yet" if age is None else f"for {age:.0f} s"
    print(f"the engine has not ticked {late}", file=sys.stderr)
    sys.exit(1)
EOF
            ;;
    esac
    exit 0
}

if [ $# -eq 0 ]; then
    set -- run
fi
if [ "$1" = healthcheck ]; then
    healthcheck
fi
if [ "$1" = autosre ]; then
    shift
    [ $# -gt 0 ] || set -- --help
fi
case "$1" in
    -*) exec autosre "$@" ;;
esac
case "$SUBCOMMANDS" in
    *" $1 "*) ;;
    *) exec "$@" ;;
esac

case "$1" in
    run)
        printf 'run\n' >"$ROLE_FILE"
        exec 2>&1
        ;;
    web)
        printf 'web %s\n' "$(web_address "$@")" >"$ROLE_FILE"
        exec 2>&1
        ;;
esac
exec autosre "$@"

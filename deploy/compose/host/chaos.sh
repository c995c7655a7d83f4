#!/bin/sh
# autosre-chaos: trouble on a demo web host, for the engine to cure (`autosre chaos`'s
# demo twin; the host image has no AutoSRE, only stress-ng).
#
#   autosre-chaos cpu [--seconds N] [--stubborn]
#       burn this container's CPUs with stress-ng until nginx restarts (its master pid
#       changes or goes), or for N seconds (default 120); --stubborn ignores restarts
#   autosre-chaos nginx-down
#       stop nginx; the engine's start_nginx brings it back
set -eu

PIDFILE="${NGINX_PIDFILE:-/run/nginx.pid}" # another path for tests only

usage() {
    echo "usage: autosre-chaos cpu [--seconds N] [--stubborn] | autosre-chaos nginx-down" >&2
    exit 2
}

# CPUs this container may use: its cgroup's quota (v2 cpu.max, v1 cfs), else all online.
cores() {
    quota=max
    period=100000
    if [ -r /sys/fs/cgroup/cpu.max ]; then
        read -r quota period </sys/fs/cgroup/cpu.max
    elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
        quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)
        period=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
    fi
    case "$quota" in
        max | -1) nproc ;;
        *) echo $(((quota + period - 1) / period)) ;;
    esac
}

burn_cpu() {
    seconds=120
    stubborn=
    while [ $# -gt 0 ]; do
        case "$1" in
            --seconds) [ $# -ge 2 ] || usage; seconds="$2"; shift ;;
            --stubborn) stubborn=yes ;;
            *) usage ;;
        esac
        shift
    done
    case "$seconds" in
        "" | *[!0-9]*) usage ;;
    esac
    workers=$(cores)
    before=$(cat "$PIDFILE" 2>/dev/null || true)
    stress-ng --cpu "$workers" --timeout "${seconds}s" --quiet &
    burner=$!
    # Whatever ends this script ends the burn too.
    trap 'kill "$burner" 2>/dev/null || true' EXIT
    trap 'exit 130' INT TERM
    echo "burning $workers CPU(s) on $(hostname) for up to ${seconds}s (nginx pid ${before:-none})"
    while kill -0 "$burner" 2>/dev/null; do
        now=$(cat "$PIDFILE" 2>/dev/null || true)
        if [ -z "$stubborn" ] && [ "$now" != "$before" ]; then
            echo "nginx restarted (pid ${before:-none} -> ${now:-none}): the burn ends"
            exit 0
        fi
        sleep 0.5
    done
    echo "the burn ran its ${seconds}s"
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
    cpu) burn_cpu "$@" ;;
    nginx-down)
        [ $# -eq 0 ] || usage
        service nginx stop
        ;;
    *) usage ;;
esac

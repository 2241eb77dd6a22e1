#!/usr/bin/env bash
# Start a local Docker daemon for the CARLA server-manager tests (idempotent).
# Installs Debian's docker.io when dockerd is missing, starts dockerd in the background when
# no daemon answers, writes its PID to $DOCKERD_PID_FILE and waits until the socket answers.
# Stop it later with:  kill "$(cat "${DOCKERD_PID_FILE:-/tmp/racer-dockerd.pid}")"
# Exits 0 when a daemon answers; exits non-zero (with the reason) when none can be had, in
# which case the Docker tests skip and say why.
set -u
PID_FILE="${DOCKERD_PID_FILE:-/tmp/racer-dockerd.pid}"
LOG_FILE="${DOCKERD_LOG_FILE:-/tmp/racer-dockerd.log}"
WAIT_S="${DOCKERD_WAIT_S:-30}"

daemon_answers() {
    # `docker info` needs only the socket; the CLI may be newer than the daemon (API negotiation).
    timeout 5 docker info >/dev/null 2>&1
}

if command -v docker >/dev/null 2>&1 && daemon_answers; then
    echo "start_dockerd: a Docker daemon already answers"
    exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
    if [ "$(id -u)" != "0" ]; then
        echo "start_dockerd: dockerd is missing and we are not root (install docker.io)" >&2
        exit 1
    fi
    echo "start_dockerd: installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q docker.io >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q docker.io >/dev/null 2>&1; } \
        || { echo "start_dockerd: apt-get install docker.io failed" >&2; exit 1; }
fi

if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "start_dockerd: dockerd (pid $(cat "$PID_FILE")) is running; waiting for its socket"
else
    # Containers here need no NAT or bridge; without iptables dockerd also starts inside
    # unprivileged containers. The stand-in containers use host networking.
    nohup dockerd --iptables=false --ip-masq=false --bridge=none \
        >"$LOG_FILE" 2>&1 &
    echo $! >"$PID_FILE"
    echo "start_dockerd: started dockerd (pid $(cat "$PID_FILE")), log $LOG_FILE"
fi

for _ in $(seq 1 "$((WAIT_S * 4))"); do
    if daemon_answers; then
        echo "start_dockerd: daemon answers"
        exit 0
    fi
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
        echo "start_dockerd: dockerd exited; last log lines:" >&2
        tail -n 5 "$LOG_FILE" >&2
        exit 1
    fi
    sleep 0.25
done
echo "start_dockerd: dockerd did not answer within ${WAIT_S}s (log $LOG_FILE)" >&2
exit 1

#!/usr/bin/env bash
# Build the tiny stand-in for carlasim/carla used by the server-manager tests (idempotent).
# Images cannot be pulled here, so the image is imported with `docker import` from a rootfs
# tarball holding Debian's busybox-static. Its ./CarlaUE4.sh reads -carla-rpc-port=N like
# CARLA does, waits STANDIN_DELAY_S (default 1 s, to exercise the readiness wait) and then
# listens on port N (busybox httpd) until killed. Prints the image tag.
set -eu
TAG="${STANDIN_IMAGE:-racer/carla-standin:test}"
if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "$TAG"
    exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
if [ -x /bin/busybox ] && /bin/busybox --list | grep -qx httpd && file -L /bin/busybox 2>/dev/null | grep -q static; then
    BUSYBOX=/bin/busybox
else
    apt-get download busybox-static >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get download busybox-static >/dev/null 2>&1; }
    dpkg-deb -x busybox-static_*.deb deb
    BUSYBOX="$WORK/deb/bin/busybox"
fi
mkdir -p rootfs/bin rootfs/home/carla rootfs/www rootfs/tmp
cp "$BUSYBOX" rootfs/bin/busybox
for applet in sh httpd sleep echo cat; do ln -s busybox "rootfs/bin/$applet"; done
# The launcher runs `bash ./CarlaUE4.sh ...`; busybox has no bash applet, so hand over to sh.
printf '#!/bin/sh\nexec /bin/sh "$@"\n' > rootfs/bin/bash
cat > rootfs/home/carla/CarlaUE4.sh <<'SCRIPT'
#!/bin/sh
# Stand-in for CARLA's launcher: listen on the RPC port given as -carla-rpc-port=N.
PORT=2000
for arg in "$@"; do
    case "$arg" in
        -carla-rpc-port=*) PORT="${arg#-carla-rpc-port=}" ;;
    esac
done
echo "stand-in CARLA: args $*"
sleep "${STANDIN_DELAY_S:-1}"
echo "stand-in CARLA: listening on $PORT"
exec httpd -f -p "$PORT" -h /www
SCRIPT
chmod +x rootfs/bin/bash rootfs/home/carla/CarlaUE4.sh
echo "stand-in" > rootfs/www/index.html
tar -C rootfs -cf rootfs.tar .
docker import --change 'WORKDIR /home/carla' --change 'CMD ["bash", "./CarlaUE4.sh"]' \
    rootfs.tar "$TAG" >/dev/null
echo "$TAG"

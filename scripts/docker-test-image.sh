#!/usr/bin/env bash
# Build the small local image the Docker tests use, without any registry:
# a rootfs holding a static busybox, its applet links and /www/health (so
# `busybox httpd -f -p PORT -h /www` can play a model server), fed to
# `docker import`. Installs nothing; does nothing when the image exists
# (FORCE=1 rebuilds). Needs Debian's busybox-static (/bin/busybox).
set -euo pipefail

IMAGE="${1:-sparkdeck-test/busybox:latest}"
BUSYBOX="${BUSYBOX:-/bin/busybox}"

if [ "${FORCE:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "docker-test-image: $IMAGE already present"
    exit 0
fi
if [ ! -x "$BUSYBOX" ]; then
    echo "docker-test-image: no busybox at $BUSYBOX (Debian: apt-get install busybox-static)" >&2
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then  # a dynamic busybox would miss its libraries in the image
    echo "docker-test-image: $BUSYBOX is dynamically linked; install busybox-static or set BUSYBOX" >&2
    exit 1
fi

ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
mkdir -p "$ROOTFS/bin" "$ROOTFS/www" "$ROOTFS/tmp" "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/dev" "$ROOTFS/etc"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$ROOTFS/bin/$applet"
done
echo ok > "$ROOTFS/www/health"
echo "root:x:0:0:root:/:/bin/sh" > "$ROOTFS/etc/passwd"
chmod 1777 "$ROOTFS/tmp"

tar -C "$ROOTFS" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$IMAGE" >/dev/null
echo "docker-test-image: built $IMAGE"

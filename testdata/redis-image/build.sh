#!/usr/bin/env bash
# Builds a minimal Redis image for the integration suite without pulling
# anything: the host's redis-server (Debian: apt-get install redis-server), the
# shared libraries it links and the dynamic loader are copied into a root file
# system, and Dockerfile (FROM scratch) turns it into IMAGE.
#
# usage: build.sh IMAGE            e.g. build.sh quorumlock/redis:local
# env:   QUORUMLOCK_REDIS_SERVER   the redis-server binary (default: from PATH)
set -euo pipefail

image=${1:?usage: build.sh IMAGE (for example quorumlock/redis:local)}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

bin=${QUORUMLOCK_REDIS_SERVER:-$(command -v redis-server || true)}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
	echo "build.sh: redis-server not found, so the image $image cannot be built." >&2
	echo "build.sh: install it first (make redis-server, or apt-get install redis-server)," >&2
	echo "build.sh: point QUORUMLOCK_REDIS_SERVER at a binary, or use an image you can pull (QUORUMLOCK_REDIS_IMAGE=redis:7)." >&2
	exit 1
fi
for tool in docker ldd; do
	command -v "$tool" >/dev/null 2>&1 || { echo "build.sh: $tool is required" >&2; exit 1; }
done

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/data" "$root/tmp"
chmod 1777 "$root/tmp"

# Debian installs redis-server as a symlink to redis-check-rdb, and Redis picks
# its mode from argv[0]: copy the file itself under the name redis-server.
cp -L "$bin" "$root/usr/local/bin/redis-server"

# Every library ldd resolves ("name => /path (addr)") and the loader (a bare
# absolute path), copied as files at the same paths.
libs=$(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if [ -z "$libs" ]; then
	echo "build.sh: ldd listed no libraries for $bin; a static binary is not expected here" >&2
	exit 1
fi
if ldd "$bin" | grep -q 'not found'; then
	echo "build.sh: $bin links libraries that are missing on this host:" >&2
	ldd "$bin" | grep 'not found' >&2
	exit 1
fi
for lib in $libs; do
	cp -L --parents "$lib" "$root/"
done

echo 'redis:x:999:999:redis:/data:/usr/local/bin/redis-server' >"$root/etc/passwd"
echo 'redis:x:999:' >"$root/etc/group"

version=$("$bin" --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
cp "$here/Dockerfile" "$ctx/Dockerfile"
echo "building $image from $bin (Redis ${version:-unknown}, FROM scratch, no pull)"
# The legacy builder (no BuildKit, no buildx needed) warns that it is
# deprecated on every build: show its output only when the build fails.
if ! DOCKER_BUILDKIT=0 docker build -q \
	--label "org.quorumlock.redis-version=${version:-unknown}" \
	-t "$image" "$ctx" >"$ctx/build.log" 2>&1; then
	cat "$ctx/build.log" >&2
	echo "build.sh: docker build of $image failed" >&2
	exit 1
fi
docker image inspect --format "built $image: {{.Id}} ({{.Size}} bytes)" "$image"

#!/usr/bin/env bash
# npm run build:image: the container images of tbot and of the Auth Service (mwi + tctl), built with
# podman (or docker: PODMAN=docker) from the single-file binaries; prints their sizes.
#
#   BIN_DIR      the binaries (default build/bin; built there with `npm run build:binary` when missing)
#   TBOT_IMAGE   default mwi/tbot-distroless:<version>   (Teleport's image is tbot-distroless too)
#   MWI_IMAGE    default mwi/mwi-distroless:<version>
#   BASE         the runtime base (default gcr.io/distroless/cc-debian12:nonroot)
#   BUILD_BASE   the first stage's base, with a shell (default docker.io/library/debian:bookworm-slim)
#   DEBIAN_MIRROR  for the local bases below (default http://deb.debian.org/debian)
#
# When BASE or BUILD_BASE is not set and the default cannot be pulled (no registry reachable), the
# script builds a local stand-in from Debian 12 packages with mmdebstrap, once:
# localhost/mwi/distroless-cc:bookworm (glibc, libstdc++, distroless's users; no shell) and
# localhost/mwi/debian-minbase:bookworm. A user with registry access gets the normal bases.
set -euo pipefail
cd "$(dirname "$0")/.."

PODMAN=${PODMAN:-podman}
VERSION=$(node -p 'require("./package.json").version')
BIN_DIR=${BIN_DIR:-build/bin}
TBOT_IMAGE=${TBOT_IMAGE:-mwi/tbot-distroless:$VERSION}
MWI_IMAGE=${MWI_IMAGE:-mwi/mwi-distroless:$VERSION}
DEFAULT_BASE=gcr.io/distroless/cc-debian12:nonroot
DEFAULT_BUILD_BASE=docker.io/library/debian:bookworm-slim
LOCAL_BASE=localhost/mwi/distroless-cc:bookworm
LOCAL_BUILD_BASE=localhost/mwi/debian-minbase:bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

die() {
  echo "build:image: $*" >&2
  exit 2
}
command -v "$PODMAN" >/dev/null 2>&1 || die "$PODMAN is not installed (Debian: apt-get install podman runc)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the binaries
missing=()
for b in tbot tctl mwi; do [ -x "$BIN_DIR/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build:image: building the binaries into $BIN_DIR (npm run build:binary)"
  npm run --silent build:binary -- --out "$BIN_DIR"
fi

have_image() { "$PODMAN" image inspect "$1" >/dev/null 2>&1; }

# A Debian 12 root file system from packages, imported as an image (no registry needed).
mmdebstrap_image() { # NAME VARIANT PACKAGES [CUSTOMIZE]
  command -v mmdebstrap >/dev/null 2>&1 ||
    die "no registry reachable and no mmdebstrap to build $1 (apt-get install mmdebstrap)"
  local root="$tmp/rootfs-${1//[^a-z]/}"
  local include=()
  [ -n "$3" ] && include=(--include="$3")
  echo "build:image: building $1 from Debian packages ($DEBIAN_MIRROR)"
  mmdebstrap --quiet --variant="$2" "${include[@]}" --skip=cleanup/apt/cache bookworm "$root" \
    "deb $DEBIAN_MIRROR bookworm main" "deb $DEBIAN_SECURITY bookworm-security main" ||
    die "mmdebstrap could not build $1 (is $DEBIAN_MIRROR reachable? DEBIAN_MIRROR names another mirror)"
  if [ -n "${4:-}" ]; then sh "$4" "$root"; else rm -rf "$root"/var/cache/apt/archives/*.deb; fi
  tar --numeric-owner -C "$root" -cf "$tmp/rootfs.tar" .
  rm -rf "$root"
  "$PODMAN" import --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    ${5:+--change "$5"} "$tmp/rootfs.tar" "$1" >/dev/null
  rm -f "$tmp/rootfs.tar"
}

# The base a variable names, else the default if present or pullable, else the local stand-in.
pick_base() { # VALUE DEFAULT LOCAL BUILDER...
  local value=$1 default=$2 local_name=$3
  shift 3
  if [ -n "$value" ]; then
    echo "$value"
  elif have_image "$default" || timeout 120 "$PODMAN" pull --quiet "$default" >/dev/null 2>&1; then
    echo "$default"
  else
    echo "build:image: cannot pull $default: using $local_name" >&2
    have_image "$local_name" || "$@" >&2
    echo "$local_name"
  fi
}

# 2. the bases
BASE=$(pick_base "${BASE:-}" "$DEFAULT_BASE" "$LOCAL_BASE" \
  mmdebstrap_image "$LOCAL_BASE" extract libc6,libgcc-s1,libstdc++6,netbase deploy/container/base-customize.sh \
  'USER 65532:65532')
BUILD_BASE=$(pick_base "${BUILD_BASE:-}" "$DEFAULT_BUILD_BASE" "$LOCAL_BUILD_BASE" \
  mmdebstrap_image "$LOCAL_BUILD_BASE" minbase "")

# Some sandboxes forbid containers to set resource limits (runc: "error setting rlimits"), and
# podman sets its default ulimits on every container, a build's RUN steps too: there, inherit the
# caller's limits instead (default_ulimits = []) for this build only.
if [ "$PODMAN" = podman ] && [ -z "${CONTAINERS_CONF:-}" ] &&
  ! podman run --rm --network=none "$BUILD_BASE" true >/dev/null 2>"$tmp/probe.err"; then
  grep -q 'setting rlimit' "$tmp/probe.err" || die "podman cannot run a container: $(cat "$tmp/probe.err")"
  printf '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\n' >"$tmp/containers.conf"
  export CONTAINERS_CONF=$tmp/containers.conf
  echo "build:image: containers may not set rlimits here: building with default_ulimits = []"
fi

# 3. the images
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
# podman: no intermediate images left behind (the first stage's would hold a copy of the binaries)
nolayers=()
[ "$(basename "$PODMAN")" = podman ] && nolayers=(--layers=false)
build() { # CONTAINERFILE TAG
  echo "build:image: $2 (from $1, base $BASE)"
  "$PODMAN" build --quiet "${nolayers[@]}" -f "$1" -t "$2" \
    --build-arg BASE="$BASE" --build-arg BUILD_BASE="$BUILD_BASE" \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
    "$BIN_DIR" >/dev/null
}
build deploy/container/Containerfile.tbot "$TBOT_IMAGE"
build deploy/container/Containerfile.mwi "$MWI_IMAGE"

size() { "$PODMAN" image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
echo "$TBOT_IMAGE  $(size "$TBOT_IMAGE")"
echo "$MWI_IMAGE  $(size "$MWI_IMAGE")"
echo "base $BASE  $(size "$BASE")"

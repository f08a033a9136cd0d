#!/bin/sh
# Trims the root file system that scripts/build-image.sh has mmdebstrap extract (libc6, libgcc-s1,
# libstdc++6, netbase, with --skip=cleanup/apt/cache) into localhost/mwi/distroless-cc:bookworm,
# the local stand-in for gcr.io/distroless/cc-debian12:nonroot used when that image cannot be
# pulled: what the binaries need at run time and distroless's users, no shell, no package manager.
# Usage: base-customize.sh ROOTFS_DIR
set -eu
root=$1

# Package records where image scanners look for them in a distroless image (one file per package
# under status.d): the libraries stay visible to CVE scanners although dpkg is not in the image.
mkdir -p "$root/var/lib/dpkg/status.d"
for deb in "$root"/var/cache/apt/archives/*.deb; do
  pkg=$(dpkg-deb --field "$deb" Package)
  { echo "Package: $pkg"; echo "Status: install ok installed"
    dpkg-deb --field "$deb" | grep -v '^Package:'; } >"$root/var/lib/dpkg/status.d/$pkg"
done

# Only the run-time files: no documentation but the copyright notices, no locales or iconv
# modules (Node.js carries its own ICU), no apt state.
find "$root/usr/share/doc" -mindepth 2 ! -name copyright -exec rm -rf {} + 2>/dev/null || true
rm -rf "$root/usr/share/info" "$root/usr/share/man" "$root/usr/share/locale" "$root/usr/share/lintian" \
  "$root/usr/share/gcc" "$root/usr/share/gdb" "$root/usr/lib/x86_64-linux-gnu/gconv" \
  "$root/etc/apt" "$root/var/lib/apt" "$root/var/cache" "$root/var/log" "$root/etc/fstab" \
  "$root/etc/hostname" "$root/etc/resolv.conf"
find "$root/var/lib/dpkg" -mindepth 1 -maxdepth 1 ! -name status.d -exec rm -rf {} +
# the container runtime provides /dev, /etc/hostname, /etc/hosts and /etc/resolv.conf
find "$root/dev" -mindepth 1 -exec rm -rf {} + 2>/dev/null || true
mkdir -p "$root/var/cache" "$root/var/log"

# distroless's users: root, nobody and nonroot (65532), the user the images run as; no login shell
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
cat >"$root/etc/os-release" <<'OS'
PRETTY_NAME="Distroless-style base for mwi (Debian GNU/Linux 12 libraries)"
NAME="Debian GNU/Linux"
ID=debian
VERSION_ID="12"
VERSION_CODENAME=bookworm
HOME_URL="https://github.com/GoogleContainerTools/distroless"
OS
install -d -m 0700 "$root/root"
install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
install -d -m 1777 "$root/tmp"

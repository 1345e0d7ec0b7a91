#!/usr/bin/env bash
# The README's first command: build berth, make the `busybox` image from Debian's
# busybox-static (no registry, nothing downloaded but Debian packages), build the API's image
# from its Dockerfile, bring the quickstart stack up (db healthy -> migrate done -> api), ask
# the API over its published port, show the project, take it down. As root.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root: bash examples/quickstart/run.sh" >&2; exit 1; }
missing=()
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v iptables-restore >/dev/null || command -v nft >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release --quiet
berth="target/release/berth -f examples/quickstart/compose.yaml"

# A one-layer image: busybox and its applets, a passwd and group file.
if ! target/release/berth images | grep -q '^docker.io/library/busybox \|^busybox '; then
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs"/{bin,etc,tmp,root,proc,sys,dev}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in $(/bin/busybox --list); do [ -e "$rootfs/bin/$applet" ] || ln -s busybox "$rootfs/bin/$applet"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
  tar -C "$rootfs" -cf "$rootfs.tar" .
  target/release/berth import --cmd sh "$rootfs.tar" busybox:latest >/dev/null
  rm -rf "$rootfs" "$rootfs.tar"
fi

trap '$berth down -t 0 >/dev/null' EXIT
$berth up -d --wait --build
echo "--- GET http://127.0.0.1:18080/"
exec 3<>/dev/tcp/127.0.0.1/18080
printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
tail -n 1 <&3
exec 3<&-
echo "--- berth ps -a"
$berth ps -a
echo "--- berth logs"
$berth logs --no-color
echo "--- berth down"
$berth down -t 0
trap - EXIT

#!/usr/bin/env bash
# Builds the pure cgroup v2 test VM: Debian's linux-image-amd64 kernel (extracted from its
# package, never installed as the host's kernel) and an initramfs holding busybox-static, the
# kernel modules berth needs from the same package, iproute2, iptables (nf_tables backend), jq,
# util-linux's unshare, the berth binary, the busybox test image and the v2 suite
# (tests/vm/suite.sh); for the benchmark (tests/vm/bench.sh) the host's crun with its libraries,
# an OCI bundle of the same busybox image (umoci, crun's default spec) and tests/vm/interleave.c
# built static. Without crun on the host the VM has none and only the benchmark fails.
#
# Usage: tests/vm/build.sh [BERTH_BINARY]   (default target/debug/berth; build it first)
# Prints the directory holding `vmlinuz` and `initramfs.img` on its last line. Everything is
# cached under target/vm, keyed on the inputs' contents; only the kernel package is downloaded
# (apt-get download, from the Debian archive the host's apt already uses).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
berth=${1:-$repo/target/debug/berth}
cache=$repo/target/vm
mkdir -p "$cache"

die() { echo "vm/build.sh: $*" >&2; exit 1; }
[ -x "$berth" ] || die "no berth binary at $berth (cargo build --bin berth)"
[ -x /bin/busybox ] || die "busybox-static is missing (apt-get install busybox-static)"
for tool in gzip jq ip xtables-nft-multi objcopy unshare cc umoci; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install jq iproute2 iptables binutils util-linux gcc umoci)"
done
crun=$(command -v crun || true)

# The kernel: the package linux-image-amd64 points at, downloaded once and unpacked.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
[ -n "$kpkg" ] || die "apt-cache cannot resolve linux-image-amd64 (apt-get update?)"
kdir=$cache/kernel-$kpkg
if [ ! -f "$kdir/.done" ]; then
  rm -rf "$kdir" && mkdir -p "$kdir/deb"
  (cd "$kdir/deb" && apt-get download -q "$kpkg" >&2) || die "apt-get download $kpkg failed"
  dpkg-deb -x "$kdir"/deb/*.deb "$kdir/root"
  rm -rf "$kdir/deb"
  touch "$kdir/.done"
fi
kver=$(ls "$kdir/root/lib/modules" | head -1)
[ -f "$kdir/root/boot/vmlinuz-$kver" ] || die "no vmlinuz-$kver in $kpkg"

# The test image, built from busybox-static by the fixtures script.
images=$cache/images
bash "$repo/tests/fixtures/make-images.sh" "$images" >&2

# Cache key: every input's content.
key=$( {
  echo "$kpkg"
  sha256sum "$berth" "$images/busybox.docker.tar" "$repo"/tests/vm/*.sh "$repo"/tests/vm/*.c "$repo"/tests/vm/init* \
    /bin/busybox ${crun:+"$crun"}
  dpkg-query -W busybox-static iproute2 iptables jq util-linux 2>/dev/null
} | sha256sum | cut -c1-16)
out=$cache/out-$key
if [ -f "$out/.done" ]; then
  echo "$out"
  exit 0
fi
rm -rf "$cache"/out-* "$cache"/stage
stage=$cache/stage
mkdir -p "$stage"/{bin,sbin,etc,usr/bin,usr/sbin,usr/lib,usr/lib64,proc,sys,dev,run,tmp,root,var/lib,vm}
# Merged /usr as on Debian 12: tools look for their plugins (iptables' xtables) under /usr/lib.
ln -s usr/lib "$stage/lib"
ln -s usr/lib64 "$stage/lib64"

# busybox provides the shell and the userland; its applets as links.
cp /bin/busybox "$stage/bin/busybox"
for applet in $(/bin/busybox --list); do
  [ -e "$stage/bin/$applet" ] || ln -s busybox "$stage/bin/$applet"
done

# Dynamic binaries and the libraries ldd names, at the same paths as on the host.
copy_with_libs() {
  local bin=$1 dest=$2
  cp -L "$bin" "$stage$dest"
  ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do
    [ -f "$stage$lib" ] && continue
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done
}
copy_with_libs "$(command -v ip)" /sbin/ip
copy_with_libs "$(command -v jq)" /usr/bin/jq
# util-linux's unshare: busybox's cannot make a cgroup namespace (the undelegated-controller check).
copy_with_libs "$(command -v unshare)" /usr/bin/unshare
copy_with_libs "$(command -v xtables-nft-multi)" /usr/sbin/xtables-nft-multi
for name in iptables iptables-restore iptables-save ip6tables ip6tables-restore ip6tables-save; do
  ln -sf xtables-nft-multi "$stage/usr/sbin/$name"
done
# iptables' match and target extensions are plugins it loads at run time.
xt=$(dirname "$(ldd "$(command -v xtables-nft-multi)" | grep -o '/[^ ]*libxtables[^ ]*')")/xtables
mkdir -p "$stage$xt" && cp -a "$xt"/. "$stage$xt/"
for lib in $(ldd "$xt"/*.so 2>/dev/null | awk '/=> \// {print $3}' | sort -u); do
  [ -f "$stage$lib" ] || { mkdir -p "$stage$(dirname "$lib")" && cp -L "$lib" "$stage$lib"; }
done
# berth without its debug sections (the debug build is ~300 MB, stripped ~40 MB).
objcopy --strip-debug "$berth" "$stage/usr/bin/berth"
for lib in $(ldd "$berth" 2>/dev/null | grep -o '/[^ ]*'); do
  [ -f "$stage$lib" ] || { mkdir -p "$stage$(dirname "$lib")" && cp -L "$lib" "$stage$lib"; }
done

# Kernel modules: overlayfs, veth, the bridge, nf_tables with iptables-nft's compat layer, loop
# (a block device for the device-policy check); depmod makes the modules.dep the package lacks.
mods=$stage/lib/modules/$kver
mkdir -p "$mods"
src=$kdir/root/lib/modules/$kver
cp "$src"/modules.builtin* "$src"/modules.order "$mods/"
for dir in kernel/net/netfilter kernel/net/ipv4/netfilter kernel/net/ipv6/netfilter kernel/net/bridge \
  kernel/net/802 kernel/net/llc kernel/fs/overlayfs; do
  mkdir -p "$mods/$dir" && cp -a "$src/$dir"/. "$mods/$dir/"
done
for file in kernel/drivers/net/veth.ko kernel/lib/libcrc32c.ko kernel/crypto/crc32c_generic.ko \
  kernel/drivers/block/loop.ko; do
  mkdir -p "$mods/$(dirname "$file")" && cp "$src/$file" "$mods/$file"
done
# busybox's depmod writes the text modules.dep and modules.alias its modprobe reads in the VM.
/bin/busybox depmod -b "$stage" "$kver"
echo "$kver" > "$stage/vm/kernel-version"

# The benchmark: crun (Debian's, with the libraries it links), an OCI bundle of the busybox
# image with crun's default spec running `true` (as benches/runtime.sh makes it), the timer.
if [ -n "$crun" ]; then
  copy_with_libs "$crun" /usr/bin/crun
  umoci unpack --image "$images/oci:busybox" "$stage/vm/bundle" >/dev/null
  (cd "$stage/vm/bundle" && rm -f config.json && "$crun" spec)
  jq '.process.args = ["true"] | .process.terminal = false' "$stage/vm/bundle/config.json" > "$stage/vm/config.json"
  mv "$stage/vm/config.json" "$stage/vm/bundle/config.json"
  # umoci's bookkeeping, not part of a bundle.
  rm -f "$stage/vm/bundle"/umoci.json "$stage/vm/bundle"/*.mtree
fi
cc -O2 -static -o "$stage/vm/interleave" "$repo/tests/vm/interleave.c"

# Test payload.
cp "$images/busybox.docker.tar" "$stage/vm/busybox.docker.tar"
cp "$repo"/tests/vm/suite.sh "$stage/vm/suite.sh"
cp "$repo"/tests/vm/bench.sh "$stage/vm/bench.sh"
cp "$repo"/tests/vm/init "$stage/init"
cp "$repo"/tests/vm/init2 "$stage/vm/init2"
chmod +x "$stage/init" "$stage/vm/init2" "$stage/vm/suite.sh" "$stage/vm/bench.sh"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$stage/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$stage/etc/hosts"
echo berth-vm > "$stage/etc/hostname"
: > "$stage/etc/resolv.conf"

mkdir -p "$out.tmp"
cp "$kdir/root/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
(cd "$stage" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$out.tmp/initramfs.img"
rm -rf "$stage" "$out"
mv "$out.tmp" "$out"
touch "$out/.done"
echo "$out"

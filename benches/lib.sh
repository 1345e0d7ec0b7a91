# shellcheck shell=bash
# Sourced by the bench scripts (from the repository's top directory).
# install_missing PKG…: installs the Debian packages that are not installed yet.
install_missing() {
  local need=() pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# build_with_images: the release binary, and the busybox test images in target/bench-images
# (made from local files by tests/fixtures/make-images.sh); sets $images.
build_with_images() {
  cargo build --release --quiet
  images=target/bench-images
  bash tests/fixtures/make-images.sh "$images"
}

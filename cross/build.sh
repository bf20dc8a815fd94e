#!/usr/bin/env bash
# Cross-builds affectd for the ARM kiosks on a Debian (bookworm) host and packages one release
# tarball per target: bin/affectd (stripped), models/, configs/, systemd/affectd.service, README.
#
#   cross/build.sh [--install-deps] [--no-package] [TARGET...]
#
# TARGET: aarch64-unknown-linux-gnu (Pi 4/5 64-bit OS, Jetson) and/or armv7-unknown-linux-gnueabihf
# (32-bit Raspberry Pi OS); default both. x86_64-unknown-linux-gnu builds on an x86_64 host (an x86
# kiosk or NUC), with ggml for x86-64-v3 (AVX2) rather than the build machine's own CPU. --install-deps installs the Debian cross toolchains,
# multiarch ALSA headers, qemu-user and the rustup targets first (needs root or sudo).
# Environment: AFFECTD_CROSS_PROFILE (cargo profile, default `dist-small`: fat LTO, size-optimised
# deps; `dist` = release without LTO, quicker to build, what CI's qemu check uses; see Cargo.toml),
# AFFECTD_PIE (with `dist-small` the binary is linked non-PIE, which saves 1.3 MB of relocations
# and gives up ASLR for the binary's own code and data; AFFECTD_PIE=1 keeps PIE),
# AFFECTD_DIST_DIR (tarball folder, default dist/), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${AFFECTD_CROSS_PROFILE:-dist-small}"
DIST="${AFFECTD_DIST_DIR:-dist}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
PACKAGE=1
INSTALL=0
TARGETS=()
for a in "$@"; do
  case "$a" in
    --install-deps) INSTALL=1 ;;
    --no-package) PACKAGE=0 ;;
    aarch64-unknown-linux-gnu|armv7-unknown-linux-gnueabihf|x86_64-unknown-linux-gnu) TARGETS+=("$a") ;;
    *) echo "cross/build.sh: unknown argument '$a' (allowed: --install-deps, --no-package, aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf, x86_64-unknown-linux-gnu)" >&2; exit 2 ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

if [ "$INSTALL" = 1 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO dpkg --add-architecture arm64
  $SUDO dpkg --add-architecture armhf
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends \
    g++-aarch64-linux-gnu g++-arm-linux-gnueabihf libasound2-dev:arm64 libasound2-dev:armhf \
    qemu-user cmake clang libclang-dev pkg-config
  rustup target add "${TARGETS[@]}"
fi

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
for target in "${TARGETS[@]}"; do
  start=$(date +%s)
  # Flags for the final crate only (with fat LTO all code is generated there): non-PIE, and
  # identical-code folding where the linker is LLD (rustc's default on x86_64 Linux; the ARM
  # cross builds link with GNU ld, which has no --icf).
  final=()
  if [ "$PROFILE" = dist-small ]; then
    [ "${AFFECTD_PIE:-0}" = 1 ] || final+=(-C relocation-model=static)
    [ "$target" != x86_64-unknown-linux-gnu ] || final+=(-C link-arg=-Wl,--icf=all)
  fi
  (
    if [ "$target" != x86_64-unknown-linux-gnu ]; then
      # shellcheck source=cross/env.sh
      . cross/env.sh "$target"
    else
      # A tarball runs on other machines: ggml for x86-64-v3 (AVX2, FMA, F16C, BMI2: Haswell
      # and later, ggml's defaults with GGML_NATIVE off), not -march=native of this one.
      export GGML_NATIVE=OFF
    fi
    cargo rustc --locked --profile "$PROFILE" --target "$target" --bin affectd -- "${final[@]}"
  )
  secs=$(( $(date +%s) - start ))
  bin="$TARGET_DIR/$target/$PROFILE/affectd"
  [ -x "$bin" ] || { echo "cross/build.sh: $bin was not produced" >&2; exit 1; }
  echo "cross/build.sh: $target built in ${secs} s: $bin ($(stat -c %s "$bin") bytes, $(file -b "$bin" | cut -d, -f1-2))"
  [ "$PACKAGE" = 1 ] || continue
  name="affectd-$version-$target"
  stage="$(mktemp -d)/$name"
  mkdir -p "$stage/bin" "$stage/systemd" "$DIST"
  cp "$bin" "$stage/bin/affectd"
  cp -r models configs "$stage/"
  cp cross/affectd.service "$stage/systemd/affectd.service"
  cp cross/INSTALL.md "$stage/README.md"
  cp docs/deploy.md "$stage/deploy.md"
  tar -C "$(dirname "$stage")" -czf "$DIST/$name.tar.gz" "$name"
  rm -rf "$(dirname "$stage")"
  echo "cross/build.sh: packaged $DIST/$name.tar.gz ($(stat -c %s "$DIST/$name.tar.gz") bytes)"
done

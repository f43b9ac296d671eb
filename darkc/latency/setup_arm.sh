#!/usr/bin/env bash
# Build the emulated phone-class ARM CPU setup that `darkc bench --device cortex-*` runs on:
#   1. QEMU 10 user-mode (aarch64-linux-user) with TCG plugins, from Debian's bookworm-backports source
#      source, its instruction-counting plugin tests/tcg/plugins/libinsn.so, and darkc's insn_window.c plugin
#      (instructions between two marker syscalls, see that file);
#   2. an aarch64 Debian bookworm userland with Python 3.11 (debootstrap --foreign, then dpkg -x);
#   3. aarch64 wheels of numpy, ai-edge-litert and onnxruntime for that Python (pip --platform --target).
# Everything lands under ${DARKC_ARM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/darkc/arm}; every step is skipped when
# its stamp exists, and each is built in a temporary folder renamed into place, so the script is idempotent and
# an interrupted run leaves nothing half-made. Needs root for apt-get (build tools, debootstrap).
# Env: DARKC_JOBS (parallel compile jobs, default: number of cores).
set -euo pipefail

CACHE=${DARKC_ARM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/darkc/arm}
JOBS=${DARKC_JOBS:-$(nproc)}
MIRROR=${DARKC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# the upstream source of Debian's bookworm-backports qemu 1:10.0.2+ds-2+deb13u1~bpo12+1 (sha256 from its Sources)
QEMU_TARBALL="qemu_10.0.2+ds.orig.tar.xz"
QEMU_TARBALL_SHA256="0901da33844a331bf8b3602b9c1fbd178e60b737c8e3ade678255bd090c9b9f1"
BUILD_TOOLS=(meson==1.5.0 pycotap==1.3.1)   # what QEMU's configure looks for in its Python
WHEELS=(numpy==2.4.6 ai-edge-litert==2.3.0 onnxruntime==1.32.0 flatbuffers==25.12.19)
# every manylinux tag bookworm's glibc 2.36 satisfies (pip does not widen an explicit --platform)
PLATFORMS=()
for t in manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_26 manylinux_2_27 manylinux_2_28 manylinux_2_31 \
         manylinux_2_34 manylinux_2_35 manylinux_2_36; do PLATFORMS+=(--platform "${t}_aarch64"); done

log() { echo "[setup-arm] $*" >&2; }
die() { echo "error: setup-arm: $*" >&2; exit 1; }

mkdir -p "$CACHE"
if [ "$(uname -m)" != "x86_64" ] && [ "$(uname -m)" != "aarch64" ]; then
  die "unsupported host $(uname -m); run on x86_64 or aarch64 Linux"
fi

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get; install them and rerun"
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}; install them (apt-get install) or rerun as root"
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

TARBALL="$CACHE/downloads/$QEMU_TARBALL"
fetch_qemu_source() {
  mkdir -p "$CACHE/downloads"
  if [ ! -f "$TARBALL" ] || ! echo "$QEMU_TARBALL_SHA256  $TARBALL" | sha256sum -c --quiet - 2>/dev/null; then
    apt_install curl xz-utils
    log "fetching $QEMU_TARBALL (Debian's QEMU source, as in bookworm-backports)"
    curl -fsSL -o "$TARBALL.part" "$MIRROR/pool/main/q/qemu/$QEMU_TARBALL" \
      || die "cannot download $MIRROR/pool/main/q/qemu/$QEMU_TARBALL; check the network or DARKC_DEBIAN_MIRROR"
    mv "$TARBALL.part" "$TARBALL"
  fi
  echo "$QEMU_TARBALL_SHA256  $TARBALL" | sha256sum -c --quiet - \
    || die "$TARBALL does not match its pinned sha256; delete it and rerun"
}

# ---------------------------------------------------------------- 1. QEMU 10 with plugins
QEMU_DIR="$CACHE/qemu"
if [ ! -f "$QEMU_DIR/.done" ]; then
  apt_install build-essential pkg-config libglib2.0-dev ninja-build flex bison curl xz-utils
  TOOLS="$CACHE/tools"
  if [ ! -f "$TOOLS/.done" ] || [ "$(cat "$TOOLS/.done")" != "${BUILD_TOOLS[*]}" ]; then
    log "${BUILD_TOOLS[*]} into $TOOLS"
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check "${BUILD_TOOLS[@]}"
    echo "${BUILD_TOOLS[*]}" > "$TOOLS/.done"
  fi
  BUILD="$CACHE/qemu-build.tmp"
  fetch_qemu_source
  rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
  tar -xJf "$TARBALL" -C "$BUILD/src" --strip-components=1
  log "configuring and building qemu-aarch64 + libinsn.so (-j$JOBS; ~5 min on 2 free cores)"
  mkdir -p "$BUILD/src/build"
  (cd "$BUILD/src/build" && PATH="$TOOLS/bin:$PATH" ../configure --python="$TOOLS/bin/python3" \
      --target-list=aarch64-linux-user --enable-plugins --disable-system --disable-tools \
      --disable-docs --disable-install-blobs > "$BUILD/configure.log" 2>&1) \
    || die "QEMU configure failed; see $BUILD/configure.log"
  (cd "$BUILD/src/build" && PATH="$TOOLS/bin:$PATH" ninja -j"$JOBS" qemu-aarch64 tests/tcg/plugins/libinsn.so \
      > "$BUILD/build.log" 2>&1) || die "QEMU build failed; see $BUILD/build.log"
  rm -rf "$QEMU_DIR.tmp" && mkdir -p "$QEMU_DIR.tmp"
  mkdir -p "$QEMU_DIR.tmp/include"
  cp "$BUILD/src/build/qemu-aarch64" "$BUILD/src/build/tests/tcg/plugins/libinsn.so" "$QEMU_DIR.tmp/"
  cp "$BUILD/src/include/qemu/qemu-plugin.h" "$QEMU_DIR.tmp/include/"
  "$QEMU_DIR.tmp/qemu-aarch64" --version | head -1 > "$QEMU_DIR.tmp/VERSION"
  echo "source $QEMU_TARBALL sha256 $QEMU_TARBALL_SHA256" >> "$QEMU_DIR.tmp/VERSION"
  touch "$QEMU_DIR.tmp/.done"
  rm -rf "$QEMU_DIR" && mv "$QEMU_DIR.tmp" "$QEMU_DIR"
  rm -rf "$BUILD"
  log "QEMU ready: $(head -1 "$QEMU_DIR/VERSION")"
fi

# ---------------------------------------------------------------- 1b. darkc's windowed instruction counter
PLUGIN_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/insn_window.c"
PLUGIN_SUM=$(sha256sum "$PLUGIN_SRC" | cut -d' ' -f1)
# named by its source's hash (darkc.latency.arm.plugin_path): checkouts with different plugin sources share the
# cache without overwriting each other's build
PLUGIN="$QEMU_DIR/libdarkc_insn-${PLUGIN_SUM:0:16}.so"
if [ ! -f "$PLUGIN" ]; then
  apt_install build-essential pkg-config libglib2.0-dev
  if [ ! -f "$QEMU_DIR/include/qemu-plugin.h" ]; then
    fetch_qemu_source
    mkdir -p "$QEMU_DIR/include"
    tar -xJf "$TARBALL" -O --wildcards "*/include/qemu/qemu-plugin.h" > "$QEMU_DIR/include/qemu-plugin.h.part"
    mv "$QEMU_DIR/include/qemu-plugin.h.part" "$QEMU_DIR/include/qemu-plugin.h"
  fi
  log "building the instruction-window plugin"
  cc -shared -fPIC -O2 -Wall $(pkg-config --cflags glib-2.0) -I"$QEMU_DIR/include" "$PLUGIN_SRC" \
    -o "$PLUGIN.tmp" || die "cannot compile $PLUGIN_SRC"
  mv "$PLUGIN.tmp" "$PLUGIN"
fi

# ---------------------------------------------------------------- 2. aarch64 Python userland
ROOT="$CACHE/rootfs"
if [ ! -f "$ROOT/.done" ]; then
  apt_install debootstrap
  rm -rf "$ROOT.tmp"
  log "debootstrap --foreign arm64 bookworm (python3) into $ROOT"
  debootstrap --arch=arm64 --foreign --variant=minbase --include=python3 bookworm "$ROOT.tmp" "$MIRROR" \
    > "$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
  for deb in "$ROOT.tmp"/var/cache/apt/archives/*.deb; do dpkg -x "$deb" "$ROOT.tmp"; done
  rm -f "$ROOT.tmp"/var/cache/apt/archives/*.deb
  [ -x "$ROOT.tmp/usr/bin/python3.11" ] || die "no python3.11 in the arm64 userland; see $CACHE/debootstrap.log"
  touch "$ROOT.tmp/.done"
  rm -rf "$ROOT" && mv "$ROOT.tmp" "$ROOT"
fi

# ---------------------------------------------------------------- 3. aarch64 wheels
SITE="$CACHE/site-aarch64"
if [ ! -f "$SITE/.done" ] || [ "$(cat "$SITE/.done")" != "${WHEELS[*]}" ]; then
  rm -rf "$SITE.tmp"
  log "aarch64 wheels: ${WHEELS[*]}"
  python3 -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "${PLATFORMS[@]}" --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
    --target "$SITE.tmp" "${WHEELS[@]}" || die "pip could not fetch aarch64 wheels ${WHEELS[*]}"
  echo "${WHEELS[*]}" > "$SITE.tmp/.done"
  rm -rf "$SITE" && mv "$SITE.tmp" "$SITE"
fi

# ---------------------------------------------------------------- 4. bytecode, so no run compiles .py files
# Debian ships its stdlib without .pyc (postinst makes them) and pip --target leaves the wheels uncompiled: every
# emulated start would compile them again, slowly and with counts that depend on what an earlier run cached.
if [ ! -f "$CACHE/.bytecode" ] || [ "$(cat "$CACHE/.bytecode")" != "${WHEELS[*]}" ]; then
  log "compiling bytecode of the aarch64 stdlib and wheels"
  if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python3 -m compileall -q -j 0 "$ROOT/usr/lib/python3.11" "$SITE" >/dev/null || true
  else
    env -i PATH=/usr/bin:/bin "$QEMU_DIR/qemu-aarch64" -L "$ROOT" "$ROOT/usr/bin/python3.11" -m compileall -q \
      "$ROOT/usr/lib/python3.11" "$SITE" >/dev/null || true
  fi
  echo "${WHEELS[*]}" > "$CACHE/.bytecode"
fi

# ---------------------------------------------------------------- check: both runtimes import under emulation
env -i PATH=/usr/bin:/bin PYTHONPATH="$SITE" PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
  "$QEMU_DIR/qemu-aarch64" -L "$ROOT" -cpu cortex-a76 "$ROOT/usr/bin/python3.11" -c \
  "import numpy, onnxruntime; from ai_edge_litert.interpreter import Interpreter; print('numpy', numpy.__version__, 'onnxruntime', onnxruntime.__version__)" \
  > "$CACHE/check.log" 2>&1 || die "the aarch64 runtimes do not import under QEMU; see $CACHE/check.log"
log "ready: $(cat "$CACHE/check.log") under $(head -1 "$QEMU_DIR/VERSION")"
echo "$CACHE"

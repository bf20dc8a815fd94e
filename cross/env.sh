# Environment for cross-compiling affectd on a Debian host (bookworm) with multiarch ALSA.
# Source it with the Rust target triple:  . cross/env.sh aarch64-unknown-linux-gnu
# Sets the C/C++ cross compilers (cc crate, whisper.cpp's CMake, ring), pkg-config for the
# target's ALSA (cpal → alsa-sys), bindgen's clang target headers (whisper-rs-sys, v4l2-sys-mit)
# and whisper.cpp options that must not probe the build machine's CPU.

affectd_cross_env() {
  local triple="$1" gnu
  case "$triple" in
    aarch64-unknown-linux-gnu) gnu=aarch64-linux-gnu ;;
    armv7-unknown-linux-gnueabihf) gnu=arm-linux-gnueabihf ;;
    *) echo "cross/env.sh: unsupported target '$triple' (allowed: aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf)" >&2; return 2 ;;
  esac
  local under="${triple//-/_}" upper
  upper="$(echo "$under" | tr '[:lower:]' '[:upper:]')"
  # C/C++ compilers and archiver, read by the cc crate and passed on to CMake by cmake-rs.
  export "CC_${under}=${gnu}-gcc" "CXX_${under}=${gnu}-g++" "AR_${under}=${gnu}-ar"
  # Linker (also in .cargo/config.toml; the variable wins and works from any directory).
  export "CARGO_TARGET_${upper}_LINKER=${gnu}-gcc"
  # pkg-config: the target's .pc files from multiarch libasound2-dev:<arch>; sysroot is /.
  export PKG_CONFIG_ALLOW_CROSS=1
  export "PKG_CONFIG_LIBDIR_${under}=/usr/lib/${gnu}/pkgconfig:/usr/share/pkgconfig"
  # bindgen runs clang for the target: point it at the cross libc/kernel headers.
  export "BINDGEN_EXTRA_CLANG_ARGS_${under}=--sysroot=/usr/${gnu} -I/usr/${gnu}/include"
  # whisper.cpp (whisper-rs-sys passes GGML_*/WHISPER_*/CMAKE_* variables to CMake): no
  # -march=native from the build machine, and a cross-compiling CMake.
  export GGML_NATIVE=OFF
  export CMAKE_SYSTEM_NAME=Linux
  case "$triple" in
    aarch64-*) export CMAKE_SYSTEM_PROCESSOR=aarch64 ;;
    armv7-*) export CMAKE_SYSTEM_PROCESSOR=armv7l ;;
  esac
}
affectd_cross_env "$@"

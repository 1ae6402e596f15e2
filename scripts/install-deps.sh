#!/usr/bin/env bash
# Install what kfunc needs, and only what is missing: Debian packages (clang,
# qemu, busybox-static, pahole, libbpf ...) and a Python venv in .venv with
# kfunc and its Python dependencies. Kernel packages are fetched by kfunc
# itself on first use (apt-get download, unpacked into ~/.cache/kfunc).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  clang llvm                 # BPF C
  clang-16                   # kptrs: clang 14 drops their BTF type tag (kfunc.clang picks the newest)
  libbpf1 libbpf-dev         # the loader, bound from Python; bpf_helpers.h
  bpftool                    # reference tool for tests and benchmarks
  dwarves                    # pahole: module BTF
  qemu-system-x86 busybox-static kmod cpio file  # virtme-ng guests (vng runs `file` on busybox)
  make gcc-12 libelf1 zstd xz-utils dpkg-dev # kbuild against Debian's headers
  mmdebstrap debian-archive-keyring          # root filesystems for 7.x builds (glibc >= 2.38)
  flex bison bc libelf-dev                   # make test-tree: a kernel built from linux-source
  time                                       # tests: a child's own peak RSS (GNU time)
)

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

missing=()
for pkg in "${PACKAGES[@]}"; do
  case "$pkg" in \#*) continue ;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# kfunc finds Debian's kernel packages through apt's lists.
if [ ${#missing[@]} -gt 0 ] || ! apt-cache pkgnames linux-image-6.12 2>/dev/null | grep -q .; then
  echo "deps: apt-get update"
  $sudo apt-get update -q
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: apt-get install ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "deps: kfunc needs Python >= 3.11 ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "deps: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.kfunc-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "deps: pip install -e .[test,chart]"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test,chart]'
  touch "$stamp"
fi

#!/usr/bin/env bash
# Installs the system packages s2n-oci and its test suite use, idempotently.
# As root it installs them (apt-get update first); as another user it prints
# exactly which are missing and the command that installs them.
#   scripts/setup-host.sh          runtime packages
#   scripts/setup-host.sh --test   also what the test suite needs, and the
#                                  unprivileged test user with a subuid range
set -euo pipefail

# g++, make and python3 build the native addons (node-pty, zstd-napi) at npm install.
runtime_pkgs=(runc crun uidmap attr g++ make python3)
test_pkgs=(docker-registry apache2-utils openssl skopeo umoci zstd podman busybox-static)
pkgs=("${runtime_pkgs[@]}")
with_test=0
if [[ "${1:-}" == "--test" ]]; then
  with_test=1
  pkgs+=("${test_pkgs[@]}")
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "s2n-oci: missing system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The packaged registry starts a service listening on all interfaces; the tests
# run their own instances on 127.0.0.1 and never use it.
if ((with_test)) && command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi

# An unprivileged user with a subordinate id range, for the rootless tests.
if ((with_test)) && [[ $(id -u) -eq 0 ]]; then
  user=s2n-test
  if ! id "$user" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$user"
  fi
  grep -q "^$user:" /etc/subuid 2>/dev/null || echo "$user:200000:65536" >>/etc/subuid
  grep -q "^$user:" /etc/subgid 2>/dev/null || echo "$user:200000:65536" >>/etc/subgid
fi
exit 0

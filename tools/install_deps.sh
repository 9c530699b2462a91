#!/usr/bin/env bash
# Installs the Debian packages vqgpt builds against (needs root or sudo).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential clang clang-format cmake pkg-config libopenblas-openmp-dev libomp-dev \
  libsentencepiece-dev sentencepiece libstb-dev libpng-dev libjpeg62-turbo-dev \
  libopenmpi-dev openmpi-bin python3 python3-torch python3-yaml python3-numpy \
  python3-torchvision python3-tqdm \
  dataset-fashion-mnist >/dev/null

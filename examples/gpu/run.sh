#!/bin/bash
# The GPU check on the GPU machine, from the repository root, offline: install the carried wheels (.whl/,
# from examples/gpu/fetch_wheels.sh) and EGL loader packages (.gl/, see README), then run check.py.
#   examples/gpu/run.sh [check.py options]      e.g. --report "$OUT/check.jsonl"
set -euo pipefail
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if compgen -G ".gl/*.deb" > /dev/null; then   # libEGL and friends (glvnd); the NVIDIA driver supplies the rest
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [[ -f $vendor ]]; then export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor; fi
export PYTHONPATH=$PWD:$PYTHONPATH HF_HUB_OFFLINE=1 PYOPENGL_PLATFORM=egl TRL_EXPERIMENTAL_SILENCE=1 \
    TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec python3 examples/gpu/check.py "$@"

#!/bin/bash
# Download, on a machine with a package registry, the wheels the GPU check needs that the GPU machine
# lacks (it has torch, transformers, accelerate, peft, torchvision, numpy, pandas, pyarrow, pillow,
# scipy, typer, rich, pyyaml, tokenizers, safetensors, huggingface-hub of its own), into .whl/ for the
# device tool's `carry`. Versions are the ones this project's tests run with; Python 3.12, x86-64 Linux.
#   examples/gpu/fetch_wheels.sh [DIR]      # default .whl (add "/.whl/" to .git/info/exclude)
set -euo pipefail
dir=${1:-.whl}
python=${PYTHON:-python3}
wheels=(
    pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 orjson==3.13.0
    trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19                 # update (TRL)
    trimesh==5.2.0 pyrender==0.1.45 freetype-py==2.5.1 pyglet==2.1.19   # render
    xgrammar==0.2.9 apache-tvm-ffi==0.1.15.post2                                   # guided decoding
    openai==3.57.0 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 jiter==0.19.0 sniffio==1.3.1
)
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do platforms+=(--platform "$p"); done
mkdir -p "$dir"
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$dir" "${wheels[@]}"
# pyrender pins PyOpenGL 3.1.0, published as source only: build its (pure-Python) wheel here.
"$python" -m pip wheel -q --no-deps -w "$dir" PyOpenGL==3.1.0
du -sh "$dir"

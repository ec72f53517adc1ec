#!/usr/bin/env bash
# Prepares what benchmarks/gpu_checks.sh needs on a lent GPU machine, where nothing can be downloaded and ../shared
# does not travel: wheels for Python 3.12 (the device image's) of what its image lacks, and the 3BPA files.
# Run here, in the repository root, once per checkout (the package registry is reachable here); the folders are
# ignored by git (.git/info/exclude) and travel with the device tool's `carry: [".whl", ".gpu_data"]` (~10 MiB).
#   .whl/base: ase, vesin (gaunt-tp's own needs beyond the image's torch, e3nn, scipy, matplotlib, tqdm, pyyaml)
#   .whl/mace: mace-torch 0.3.16 with e3nn 0.4.4 and the packages of its imports that the image lacks, installed
#              on the device apart from the rest, for the whole-model comparison only (its other imports, h5py,
#              torchmetrics, lightning-utilities, pandas are in the image: .library/device/KINDS.md)
#   .whl/cueq: cuequivariance, cuequivariance-torch 0.13.0 and platformdirs (pure Python), and their CUDA 13 kernels
#              (cuequivariance-ops-torch-cu13 and -ops-cu13, 73 MB as wheels, over the tool's 64 MiB) unpacked and
#              packed again as ops.tar.xz (27 MB), for mace-torch with cuEquivariance in the same comparison
set -euo pipefail
cd "$(dirname "$0")/.."
for path in /.whl/ /.gpu_data/ /.gpu_run/; do  # .gpu_run: the GPU's 3BPA run between calls (gpu_checks.sh)
    grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
done
WHEELS=(--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
        --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q "${WHEELS[@]}" -d .whl/base ase==3.29.0 vesin==0.6.2
python3 -m pip download -q "${WHEELS[@]}" -d .whl/mace mace-torch==0.3.16 e3nn==0.4.4 torch-ema prettytable wcwidth \
    matscipy configargparse GitPython gitdb smmap lmdb orjson opt_einsum opt-einsum-fx
python3 -m pip download -q --no-deps --no-binary=:all: -d /tmp/hostlist_sdist python-hostlist==2.3.0
python3 -m pip wheel -q --no-deps -w .whl/mace /tmp/hostlist_sdist/python_hostlist-2.3.0.tar.gz  # pure Python
python3 -m pip download -q "${WHEELS[@]}" -d .whl/cueq cuequivariance==0.13.0 cuequivariance-torch==0.13.0 \
    platformdirs==4.14.9  # cuequivariance_ops imports it; the image lacks it
if [ ! -f .whl/cueq/ops.tar.xz ]; then
    OPS=$(mktemp -d)
    python3 -m pip download -q "${WHEELS[@]}" --platform manylinux_2_27_x86_64 -d "$OPS/wheels" \
        cuequivariance-ops-torch-cu13==0.13.0 cuequivariance-ops-cu13==0.13.0
    mkdir "$OPS/site" && for w in "$OPS"/wheels/*.whl; do unzip -q -o "$w" -d "$OPS/site"; done
    tar -C "$OPS/site" -cf - . | xz -9 -T0 > .whl/cueq/ops.tar.xz.part && mv .whl/cueq/ops.tar.xz.part .whl/cueq/ops.tar.xz
    rm -rf "$OPS"
fi
mkdir -p .gpu_data
cp ../shared/data/3bpa/train_300K.xyz ../shared/data/3bpa/iso_atoms.xyz .gpu_data/
du -sh .whl .gpu_data

#!/usr/bin/env bash
# The GPU path in one command (issue 15, part 2): build mmcv's CUDA ops, run one, train the zoo
# with and without AMP, test with flip TTA. See benchmarks/README.md, "GPU setup".
#
#   benchmarks/gpu/check.sh pack                 here (pip + the real data): fill .gpu/ with the
#                                                wheels a Python 3.12 GPU machine lacks, mmcv's
#                                                source and the real train_512 images
#   benchmarks/gpu/check.sh run --out DIR        on the GPU machine (no network), from the repo root
#   benchmarks/gpu/check.sh dry-run --out DIR    the same steps on this CPU in about a minute: no
#                                                build, the op check on the CPU, bench_gpu.py --dry-run
# Options (run / dry-run): --arch 9.0 (TORCH_CUDA_ARCH_LIST), --jobs N (default: all cores),
#   --budget S (seconds for the whole run, default 570: later steps are skipped or stopped),
#   --skip-build (mmcv with CUDA ops already importable); anything after -- goes to bench_gpu.py.
# Environment: PY (default python3; for dry-run e.g. .venv/bin/python), SEGPC_REAL_DATA (pack).
# Output in DIR: check.log (this script), build.log, gpu_check.{json,md,log}. Exit 0 only if all ran.
set -uo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
PY=${PY:-python3}
PACK=.gpu                       # git-ignored; the device tool carries it (carry: [".gpu"])
MMCV=mmcv==2.1.0
# What the GPU machine's image lacks (its list: the device tool's KINDS.md); one version each.
# setuptools < 81: mmcv 2.1.0's setup.py imports pkg_resources (as the Makefile pins it).
WHEELS="mmengine==0.10.7 mmdet==3.3.0 pycocotools==2.0.10 shapely==2.1.2 addict==2.4.0 yapf==0.43.0
        platformdirs==4.3.8 termcolor==3.1.0 terminaltables==3.1.10 setuptools==80.9.0"

die() { echo "check.sh: $*" >&2; exit 2; }

pack() {
  rm -rf "$PACK/whl" && mkdir -p "$PACK/whl" "$PACK/data" || exit 2
  # shellcheck disable=SC2086
  $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$PACK/whl" $WHEELS || die "pip download of the wheels failed"
  # mmcv's source: reading its metadata imports torch, so this needs a python with torch (PY).
  $PY -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$PACK" "$MMCV" \
    || die "pip download of $MMCV's source failed (PY must have torch)"
  local data=${SEGPC_REAL_DATA:-$REPO/../shared/data/segpc_real}
  [ -d "$data/train_512/x" ] || die "$data/train_512: no real data (set SEGPC_REAL_DATA)"
  rm -rf "$PACK/data/train_512" && cp -rL "$data/train_512" "$PACK/data/" || exit 2
  du -sh "$PACK"; ls "$PACK" "$PACK/whl"
  echo "pack: done; the device call carries [\"$PACK\"] (64 MiB at most with the repo)"
}

MODE=${1:-}; shift || true
OUT=""; ARCH=9.0; JOBS=$(nproc); BUDGET=570; SKIP_BUILD=0; EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:-}; shift 2 ;;
    --arch) ARCH=${2:-}; shift 2 ;;
    --jobs) JOBS=${2:-}; shift 2 ;;
    --budget) BUDGET=${2:-}; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) die "unknown argument: $1 (see the header of $0)" ;;
  esac
done
case $MODE in
  pack) pack; exit $? ;;
  run|dry-run) ;;
  *) die "usage: $0 pack | run --out DIR | dry-run --out DIR [--arch A] [--jobs N] [--budget S] [--skip-build] [-- bench_gpu.py args]" ;;
esac
[ -n "$OUT" ] || die "--out DIR is required"
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer: $JOBS"
[[ $BUDGET =~ ^[1-9][0-9]*$ ]] || die "--budget must be seconds: $BUDGET"
mkdir -p "$OUT" || exit 2
exec > >(tee -a "$OUT/check.log") 2>&1
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
echo "check.sh $MODE: $(date -u +%FT%TZ), $(nproc) cores, arch $ARCH, jobs $JOBS, budget ${BUDGET}s"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

SITE=/tmp/segpc_site
export PYTHONPATH=$SITE:$REPO
if [ "$MODE" = run ]; then
  ls "$PACK"/whl/*.whl >/dev/null 2>&1 || die "$PACK/whl: no wheels (run '$0 pack' here first, carry $PACK)"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$PACK"/whl/*.whl \
    || die "installing the carried wheels failed"
fi

# 1. mmcv with CUDA ops, from the carried source.
BUILD_JSON="null"
if [ "$MODE" = run ] && [ $SKIP_BUILD = 0 ]; then
  SDIST=$(ls "$PACK"/mmcv-*.tar.gz 2>/dev/null | head -1)
  [ -n "$SDIST" ] || die "$PACK: no mmcv source"
  rm -rf /tmp/segpc_mmcv && mkdir -p /tmp/segpc_mmcv && tar xzf "$SDIST" -C /tmp/segpc_mmcv || exit 2
  SRC=$(ls -d /tmp/segpc_mmcv/mmcv-*)
  NVCC=$( (nvcc --version 2>/dev/null || "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" --version 2>/dev/null) | grep -o 'release [0-9.]*')
  echo "build: $(basename "$SDIST"), nvcc ${NVCC:-not found}, TORCH_CUDA_ARCH_LIST=$ARCH, MAX_JOBS=$JOBS"
  B0=$(date +%s)
  (cd "$SRC" && MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$ARCH MAX_JOBS=$JOBS \
     $PY -m pip wheel -v --no-index --no-deps --no-build-isolation . -w /tmp/segpc_mmcv/dist) > "$OUT/build.log" 2>&1
  RC=$?
  BS=$(( $(date +%s) - B0 ))
  NOBJ=$(grep -cE '^\s*\[[0-9]+/[0-9]+\]' "$OUT/build.log")
  [ $RC = 0 ] && { $PY -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target "$SITE" /tmp/segpc_mmcv/dist/mmcv-*.whl || RC=3; }
  echo "build: rc $RC in ${BS}s ($NOBJ compile steps logged)"
  BUILD_JSON="{\"sdist\": \"$(basename "$SDIST")\", \"nvcc\": \"${NVCC:-}\", \"arch\": \"$ARCH\", \"jobs\": $JOBS, \"seconds\": $BS, \"rc\": $RC, \"steps_logged\": $NOBJ}"
  if [ $RC != 0 ]; then
    tail -40 "$OUT/build.log"
    echo "{\"build\": $BUILD_JSON}" > "$OUT/gpu_check.json"
    die "mmcv build failed: $OUT/build.log"
  fi
fi

# 2. One CUDA op, checked against mmcv's CPU kernel (on a CPU run: the CPU kernel alone).
echo "op check: mmcv.ops.nms and roi_align"
OPS_JSON=$($PY - <<'EOF'
import json, torch
from mmcv.ops import nms, roi_align
g = torch.Generator().manual_seed(0)
xy = torch.rand(2000, 2, generator=g) * 500
boxes = torch.cat([xy, xy + 10 + torch.rand(2000, 2, generator=g) * 90], 1)
scores = torch.rand(2000, generator=g)
feat = torch.rand(2, 16, 64, 64, generator=g)
rois = torch.tensor([[0, 4.0, 4.0, 40.0, 30.0], [1, 10.5, 2.25, 63.0, 50.0]])
_, keep_cpu = nms(boxes, scores, 0.5)
ra_cpu = roi_align(feat, rois, (7, 7), 1.0, 2, "avg", True)
res = {"device": "cpu", "nms_kept": int(keep_cpu.numel())}
if torch.cuda.is_available():
    _, keep = nms(boxes.cuda(), scores.cuda(), 0.5)
    ra = roi_align(feat.cuda(), rois.cuda(), (7, 7), 1.0, 2, "avg", True)
    torch.cuda.synchronize()
    res |= {"device": torch.cuda.get_device_name(0), "nms_same_as_cpu": bool(torch.equal(keep.cpu(), keep_cpu)),
            "roi_align_max_abs_diff": float((ra.cpu() - ra_cpu).abs().max())}
    res["ok"] = res["nms_same_as_cpu"] and res["roi_align_max_abs_diff"] < 1e-4
else:
    res["ok"] = keep_cpu.numel() > 0
print(json.dumps(res))
EOF
)
RC=$?
echo "op check: rc $RC $OPS_JSON"
[ $RC = 0 ] && [ -n "$OPS_JSON" ] || OPS_JSON="{\"ok\": false, \"rc\": $RC}"
printf '{"build": %s, "op_check": %s, "check_mode": "%s"}\n' "$BUILD_JSON" "$OPS_JSON" "$MODE" > "$OUT/extra.json"
case $OPS_JSON in *'"ok": true'*) ;; *) die "op check failed" ;; esac

# 3. Trainings and TTA tests, inside what is left of the budget.
LEFT=$(( BUDGET - $(elapsed) ))
[ $LEFT -gt 30 ] || die "no time left for the trainings (${LEFT}s)"
DATA=()
[ "$MODE" = run ] && DATA=(--data "$PACK/data")
[ "$MODE" = dry-run ] && DATA+=(--dry-run)
$PY benchmarks/gpu/bench_gpu.py --out-dir "$OUT" --extra "$OUT/extra.json" --budget "$LEFT" "${DATA[@]}" "${EXTRA[@]}"
RC=$?
echo "check.sh: done in $(elapsed)s, rc $RC"
exit $RC

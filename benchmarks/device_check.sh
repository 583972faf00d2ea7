#!/usr/bin/env bash
# The GPU engine's checks and figures on the device machine (../shared/device/README.md), in groups that each
# fit one device call (at most 10 minutes; a session has 15 minutes of device time in all):
#
#   device run: . .whl/setup.sh && bash benchmarks/device_check.sh engine    (carry .whl; results in $OUT)
#               ... device_check.sh study       paper_categorical, 32 seeds x 5,000 steps (the 3-minute target)
#               ... device_check.sh precision   paper_categorical, 16 seeds, at fp32, tf32 and bf16
#   here, first: CHECK_SIZE=tiny OUT=/tmp/out bash benchmarks/device_check.sh engine   (tiny, on a CPU)
#
# engine: the CUDA tests (draws, graph replay = eager, members close to single runs, no re-capture),
# bench_population (mlp, conv, paper; K up to 1,024) and bench_step with the peer's loop. Each part has its own
# time limit and writes what it measured under $OUT, so a part that runs out of time leaves the others'.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to a folder for the results}
mkdir -p "$OUT"
tiny=$([ "${CHECK_SIZE:-full}" = tiny ] && echo 1 || echo 0)
py=${PYTHON:-python3}
device=$($py -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
echo "device_check: $device, $($py -c 'import torch; print(torch.__version__)')" | tee "$OUT/summary.txt"

part() {  # part NAME SECONDS COMMAND...: run one part under its limit, its output in $OUT/NAME.txt
  local name=$1 limit=$2
  shift 2
  local started=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
  echo "$name: exit $? in $((SECONDS - started)) s" | tee -a "$OUT/summary.txt"
}

export RAY_AUTH_MODE=disabled
steps=$([ "$tiny" = 1 ] && echo 60 || echo 200)
seeds_steps=$([ "$tiny" = 1 ] && echo "2 20" || echo "32 5000")
case "${1:-engine}" in
  engine)
    part cuda_tests 90 $py -m pytest -q -n 0 tests/core/test_core_cuda.py
    part population 300 $py benchmarks/bench_population.py --json --repeats 1 --steps "$steps" --window 20 --device "$device"
    part step 100 $py benchmarks/bench_step.py --json --device "$device"
    part step_tf32 60 $py benchmarks/bench_step.py --json --device "$device" --precision tf32 ;;
  study)
    set -- $seeds_steps
    part paper_categorical 420 $py -m sweep.cli run studies/large/paper_categorical.yaml --seeds "$1" --steps "$2" \
      --new-name check_paper --root "$OUT/runs" ;;
  precision)
    set -- $seeds_steps
    for p in fp32 tf32 bf16; do
      part "paper_$p" 180 $py -m sweep.cli run studies/large/paper_categorical.yaml --seeds "$(( $1 / 2 ))" \
        --steps "$2" --set precision=$p --new-name "paper_$p" --root "$OUT/runs"
    done ;;
  *) echo "device_check: engine | study | precision" >&2; exit 2 ;;
esac
rm -rf "$OUT/runs/ray" "$OUT/runs/artifacts"  # the storage comes back whole; `sweep show --root` reads it here

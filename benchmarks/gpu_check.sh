#!/usr/bin/env bash
# One prepared GPU check for the Triton kernels (issue #3); fits in 8 minutes on an H100/H200.
#
#   bash benchmarks/gpu_check.sh            # results under $OUT if set, else benchmarks/gpu-results/
#
# 1. finds a Python with a CUDA torch and triton (SATSCOPE_GPU_PYTHON, .venv-gpu, .venv, python3), or
#    makes .venv-gpu with torch==2.13.0 from PyPI (the CUDA build: the one place it is allowed);
# 2. runs tests/ops compiled (no TRITON_INTERPRET), in fp32, bf16 and fp16;
# 3. runs benchmarks/kernels.py (bf16, the issue's shapes) -> kernels.json;
# 4. runs benchmarks/gpu_probe_check.py when present;
# 5. serves llama-3.1-8b shapes (random weights) through the engine: output tokens/s and model
#    bandwidth utilization at 1 and 64 streams -> server.json.
# Every step has its own time limit, and a failed step does not stop the next one.
set -uo pipefail
cd "$(dirname "$0")/.."
RESULTS="${OUT:-benchmarks/gpu-results}"
mkdir -p "$RESULTS"
exec > >(tee -a "$RESULTS/gpu_check.log") 2>&1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET SATSCOPE_KERNELS
START=$(date +%s)
FAILED=()
step() { echo; echo "=== $1 ($(($(date +%s) - START)) s elapsed)"; }
BUDGET_S=${GPU_CHECK_BUDGET_S:-460} # the whole script must end within 8 minutes
run() { # run NAME SECONDS CMD...: one step under its own limit, cut to what the budget has left
    local name=$1 limit=$2; shift 2
    local left=$((BUDGET_S - ($(date +%s) - START)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
        step "$name: skipped, the 8-minute budget is spent"
        FAILED+=("$name:skipped")
        return
    fi
    step "$name (limit ${limit} s)"
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    [ "$rc" -eq 0 ] || { echo "--- $name failed (exit $rc)"; FAILED+=("$name:$rc"); }
}
cuda_python() { "$1" -c "import sys, torch, triton; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }

step "GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$RESULTS/gpu.csv"

PY=""
for candidate in "${SATSCOPE_GPU_PYTHON:-}" .venv-gpu/bin/python .venv/bin/python python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null && cuda_python "$candidate"; then
        PY=$candidate
        break
    fi
done
if [ -z "$PY" ]; then
    step "making .venv-gpu: torch==2.13.0 (CUDA build) + triton"
    python3 -m venv --system-site-packages .venv-gpu
    timeout 200 .venv-gpu/bin/pip install -q "torch==2.13.0" triton numpy
    PY=.venv-gpu/bin/python
    cuda_python "$PY" || { echo "FAIL: no Python with a CUDA torch and triton (offline machine?)"; exit 1; }
fi
"$PY" -c "import pytest" 2>/dev/null || timeout 120 "$PY" -m pip install -q pytest pytest-timeout
"$PY" -c "import torch, triton; print('python', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())" | tee "$RESULTS/versions.txt"

ops_tests_in_parallel() { # one pytest per file: Triton compiles each kernel variant once, on its own core
    local pids=() f rc=0
    for f in tests/ops/test_*.py; do
        "$PY" -m pytest "$f" -q -p no:cacheprovider -rs --junitxml="$RESULTS/$(basename "$f" .py).xml" \
            >"$RESULTS/$(basename "$f" .py).log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    tail -n 3 "$RESULTS"/test_*.log
    return $rc
}
export -f ops_tests_in_parallel
export PY RESULTS
run "kernel tests, compiled (fp32, bf16, fp16)" 200 bash -c ops_tests_in_parallel

run "kernel benchmark, bf16" 120 "$PY" benchmarks/kernels.py --json "$RESULTS/kernels.json"

if [ -f benchmarks/gpu_probe_check.py ]; then
    run "GPU probe check" 45 "$PY" benchmarks/gpu_probe_check.py
else
    step "GPU probe check: benchmarks/gpu_probe_check.py not present, skipped"
fi

run "server, llama-3.1-8b shapes" 120 "$PY" - "$RESULTS/server.json" <<'PYEOF'
"""Output tokens/s and model bandwidth utilization of the engine on llama-3.1-8b shapes (random weights)."""
import json
import sys
import time

import torch

from benchmarks.kernels import peak_tbps
from satscope.server_under_test import LLMEngine, SamplingParams, ServerConfig

PROMPT, NEW = 128, 128
engine = LLMEngine(ServerConfig(preset="llama-3.1-8b", dtype="bfloat16", device="cuda", max_num_seqs=64,
                                max_batched_tokens=8192, gpu_memory_utilization=0.85))
facts = engine.facts
peak = peak_tbps(torch.cuda.get_device_name())
engine.generate([[1, 2, 3]], SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True))  # compile
rows = []
for streams in (1, 64):
    prompts = [[(31 * i + 7 * j) % 256 for j in range(PROMPT)] for i in range(streams)]
    params = SamplingParams(max_tokens=NEW, temperature=0.0, ignore_eos=True)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    outs = engine.generate(prompts, params)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    tokens = sum(len(o.token_ids) for o in outs)
    # Each decode step reads every weight once and each stream's KV so far (on average prompt + NEW/2).
    step_bytes = facts.weight_bytes + streams * (PROMPT + NEW // 2) * facts.kv_bytes_per_token
    mbu = None if peak is None else step_bytes * NEW / elapsed / (peak * 1e12)
    rows.append({"streams": streams, "output_tokens": tokens, "elapsed_s": elapsed,
                 "output_tokens_per_s": tokens / elapsed, "mbu": mbu})
    print(f"streams={streams:3d}  output tokens/s={tokens / elapsed:9.1f}  elapsed={elapsed:6.2f} s  "
          f"MBU={'-' if mbu is None else f'{100 * mbu:.1f}%'}  (prefill included; kernels {facts.kernels})")
json.dump({"device": torch.cuda.get_device_name(), "kernels": facts.kernels, "prompt_tokens": PROMPT,
           "new_tokens": NEW, "rows": rows}, open(sys.argv[1], "w"), indent=2)
PYEOF

step "done in $(($(date +%s) - START)) s; results in $RESULTS"
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED steps: ${FAILED[*]}"
    exit 1
fi
echo "all steps passed"

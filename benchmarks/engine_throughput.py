"""Engine throughput on the `tiny` preset: output tokens/s at 1, 8, 32 and 64 concurrent streams.

In-process engine (no HTTP), closed loop: each of N streams starts a new request as soon as its
previous one finishes, so N sequences are always in the batch. Reports, side by side in one run,
tokens/s, the ratio to one stream (what continuous batching buys), and the share of step time
spent in Python scheduling (scheduler + output processing) and in building the batch tensors.
The levels are measured in interleaved rounds and each reports its median round, so a machine
shared with other work skews every level alike rather than whichever ran during a busy moment.

    .venv/bin/python benchmarks/engine_throughput.py [--seconds 2] [--rounds 3] [--results benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

from satscope.server_under_test import LLMEngine, SamplingParams, ServerConfig
from satscope.server_under_test.outputs import RequestOutput

SECTION = "## engine_throughput"


@dataclass
class Level:
    streams: int
    tokens_per_s: float
    steps: int
    mean_batch: float
    schedule_share: float
    prepare_share: float
    step_ms: float


def run_level(engine: LLMEngine, streams: int, seconds: float, prompt_len: int, max_tokens: int) -> Level:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, ignore_eos=True)
    prompt = [ord("a") + i % 26 for i in range(prompt_len)]
    live: set[str] = set()
    counter = 0

    def on_output(out: RequestOutput) -> None:
        if out.finished:
            live.discard(out.request_id)

    def top_up() -> None:
        nonlocal counter
        while len(live) < streams:
            rid = f"s{streams}-{time.monotonic_ns()}-{counter}"
            engine.add_request(rid, prompt, params, on_output)
            counter += 1
            live.add(rid)

    # Warm-up: fill the batch and let it reach a steady mix of prefill and decode.
    top_up()
    for _ in range(20):
        engine.step()
        top_up()
    tokens = steps = batch = 0
    sched = prep = total = 0.0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        outs = engine.step()
        top_up()
        t = engine.last_timing
        tokens += len(outs)
        steps += 1
        batch += t.batch_size
        sched += t.schedule_s + t.postprocess_s
        prep += t.prepare_s
        total += t.total_s
    elapsed = time.perf_counter() - start
    for rid in list(live):  # leave the engine empty for the next level
        engine.abort(rid)
    engine.step()
    assert not engine.has_unfinished and engine.block_manager.num_used_blocks == 0
    return Level(streams, tokens / elapsed, steps, batch / steps, sched / total, prep / total, 1000 * elapsed / steps)


def median_level(runs: list[Level]) -> Level:
    return sorted(runs, key=lambda lv: lv.tokens_per_s)[len(runs) // 2]


def render(runs: dict[int, list[Level]], seconds: float, prompt_len: int, max_tokens: int) -> str:
    levels = [median_level(r) for r in runs.values()]
    rounds = len(next(iter(runs.values())))
    base = levels[0].tokens_per_s
    lines = [
        SECTION,
        "",
        f"`benchmarks/engine_throughput.py`, tiny preset, in-process engine, closed loop of N streams, "
        f"prompt {prompt_len} tokens, max_tokens {max_tokens}, greedy, {rounds} interleaved rounds of "
        f"{seconds:g} s per level, median round shown; "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch on 1 thread, kernels torch (CPU). "
        "The machine was shared with other work (four other engineers' tests on the same 2 cores), "
        "so absolute numbers are noisy; the ratios come from one run.",
        "",
        "| streams | output tok/s | × 1 stream | mean batch | step ms | scheduling share | batch-building share |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        lines.append(
            f"| {lv.streams} | {lv.tokens_per_s:,.0f} | {lv.tokens_per_s / base:.1f}× | {lv.mean_batch:.1f} "
            f"| {lv.step_ms:.1f} | {100 * lv.schedule_share:.1f}% | {100 * lv.prepare_share:.1f}% |"
        )
    lines += [
        "",
        "Targets: ≥ 10× one stream at 64 streams; scheduling (scheduler + output processing) "
        "under 10% of step time. Batch-building (Python lists → tensors) is reported apart.",
        "",
        "Tokens/s of every round, in order: "
        + "; ".join(f"{n} streams {', '.join(f'{lv.tokens_per_s:,.0f}' for lv in r)}" for n, r in runs.items())
        + ".",
    ]
    return "\n".join(lines) + "\n\n"  # a blank line before whichever section follows


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="measured time per level and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each level reports its median")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--results", type=Path, help="write the table into this RESULTS.md section")
    args = ap.parse_args()
    engine = LLMEngine(ServerConfig(preset="tiny", max_num_seqs=max(args.streams)))
    runs: dict[int, list[Level]] = {n: [] for n in args.streams}
    for _ in range(args.rounds):
        for n in args.streams:
            runs[n].append(run_level(engine, n, args.seconds, args.prompt_len, args.max_tokens))
    section = render(runs, args.seconds, args.prompt_len, args.max_tokens)
    print(section)
    if args.results:
        write_section(args.results, section)


if __name__ == "__main__":
    main()

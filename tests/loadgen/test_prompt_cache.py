"""No accidental prompt-cache hits: a fresh seed per run, a unique lead-in per prompt, the server's
cached-token counts recorded, and the report's warning when a repeated `--seed` hits the cache.

The fake server simulates a prefix cache over every prompt it has seen (in words) and reports
`usage.prompt_tokens_details.cached_tokens`, like vLLM and llama.cpp."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from satscope.loadgen.workload import LEAD_IN_WORDS, LengthDist, Workload, WorkloadConfig
from satscope.reports._load import load_run
from satscope.reports._prompt_cache import prompt_cache_warnings
from tests.loadgen.conftest import ROOT, run_satscope


def _run(server, out, *extra: str, report: bool = False):
    import subprocess
    import sys

    args = ["--target", server.url, "--users", "2", "--duration", "2", "--input-len", "40", "--output-len", "4",
            "--out", str(out), *extra]  # fmt: skip
    if report:
        cmd = [sys.executable, "-m", "satscope", "run", "--quiet", "--no-probes", *args]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    else:
        res = run_satscope(*args)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "run.json").read_text())
    req = pq.read_table(out / "requests.parquet").to_pandas()
    rec = server.records()["requests"]
    req["sha"] = req.request_id.map(lambda rid: rec[rid]["prompt_sha"])
    req["server_cached"] = req.request_id.map(lambda rid: rec[rid]["cached"])
    return manifest, req


def _share(req) -> float:
    return float(req.prompt_tokens_cached.sum() / req.prompt_tokens.sum())


def test_fresh_seeds_miss_the_cache_and_a_repeated_seed_is_warned_about(server_factory, tmp_path) -> None:
    server = server_factory(ttft=0.005, itl=0.002, prefix_cache=True)
    m1, r1 = _run(server, tmp_path / "a")
    m2, r2 = _run(server, tmp_path / "b")
    seed = m1["config"]["workload"]["seed"]
    assert seed != m2["config"]["workload"]["seed"]
    assert not set(r1.sha) & set(r2.sha) and r1.sha.is_unique
    # recorded exactly as the server reported it
    assert (r2.prompt_tokens_cached == r2.server_cached).all()
    # a unique lead-in: no prompt shares more than its first LEAD_IN_WORDS - 1 words with another
    assert r2.prompt_tokens_cached.max() < LEAD_IN_WORDS and _share(r2) < 0.05
    assert [w["code"] for w in prompt_cache_warnings(load_run(tmp_path / "b"))] == ["prompt_cache"]

    m3, r3 = _run(server, tmp_path / "c", "--seed", str(seed), report=True)
    assert m3["config"]["workload"]["seed"] == seed
    same = r3.set_index("request_id").sha.align(r1.set_index("request_id").sha, join="inner")
    assert len(same[0]) > 10 and (same[0] == same[1]).all()  # --seed repeats the prompts exactly
    assert _share(r3) > 0.5
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    hits = [w for w in summary["validity"]["warnings"] if w["code"] == "prompt_cache_hits"]
    assert len(hits) == 1 and hits[0]["severity"] == "warning" and "--seed" in hits[0]["message"]

    # shared prefixes asked for: high share, said as information, not warned about
    _, r4 = _run(server, tmp_path / "d", "--prefix-groups", "2", "--prefix-tokens", "20")
    assert _share(r4) > 0.3
    assert [w["code"] for w in prompt_cache_warnings(load_run(tmp_path / "d"))] == ["prompt_cache"]


def test_lead_ins_are_unique_and_come_after_a_shared_prefix() -> None:
    cfg = WorkloadConfig(input_len=LengthDist("fixed", 12), seed=3)
    w = Workload(cfg, stream_id=1)
    heads = [tuple(w.next_request().prompt.split()[:LEAD_IN_WORDS]) for _ in range(5000)]
    assert len(set(heads)) == len(heads) and len({h[0] for h in heads[:40]}) > 20
    shared = Workload(WorkloadConfig(input_len=LengthDist("fixed", 30), prefix_groups=1, prefix_tokens=10, seed=3))
    a, b = (shared.next_request().prompt.split() for _ in range(2))
    assert a[:10] == b[:10] and a[10:17] != b[10:17] and len(a) == len(b) == 30

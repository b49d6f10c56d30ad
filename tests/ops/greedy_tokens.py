"""Greedy generation with the tiny model, printed as JSON: run once per kernel backend and compare.

Run as ``python -m tests.ops.greedy_tokens`` in a fresh process, so that ``SATSCOPE_KERNELS`` and
``TRITON_INTERPRET`` are in the environment before anything imports the kernels.
"""

from __future__ import annotations

import json

# Prompt lengths: one token, an odd length, exactly one block and just past it, and one longer than
# the step's token budget below, so its prefill is chunked and reads its first chunk back from the cache.
PROMPT_LENGTHS = (1, 7, 16, 17, 45)
MAX_TOKENS = 6


def main() -> None:
    import torch

    from satscope.server_under_test import LLMEngine, SamplingParams, ServerConfig, ops

    config = ServerConfig(
        preset="tiny", dtype="float32", seed=1, kv_blocks=64, block_size=16, max_batched_tokens=32, torch_threads=1
    )
    engine = LLMEngine(config)
    generator = torch.Generator().manual_seed(7)
    prompts = [torch.randint(0, 256, (n,), generator=generator).tolist() for n in PROMPT_LENGTHS]
    params = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0, ignore_eos=True)
    outputs = engine.generate(prompts, params)
    print(json.dumps({"backend": ops.backend(), "tokens": [out.token_ids for out in outputs]}))


if __name__ == "__main__":
    main()

"""Choose the next token of each sequence from its logits: greedy, temperature, top-p, per-request seed.

A request with a seed draws from its own generator, so its tokens do not depend on what else is
in the batch; requests without a seed share the engine's generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from satscope.server_under_test.sampling_params import SamplingParams

if TYPE_CHECKING:
    import torch

__all__ = ["Sampler"]


class Sampler:
    def __init__(self, seed: int, eos_token_id: int | list[int], banned_token_ids: list[int] | None = None) -> None:
        import torch

        self._generator = torch.Generator().manual_seed(seed)
        self._eos_token_ids = [eos_token_id] if isinstance(eos_token_id, int) else sorted(eos_token_id)
        self._banned = banned_token_ids or []
        self._request_generators: dict[str, torch.Generator] = {}

    def forget(self, request_id: str) -> None:
        self._request_generators.pop(request_id, None)

    def _generator_for(self, request_id: str, params: SamplingParams) -> torch.Generator:
        import torch

        if params.seed is None:
            return self._generator
        gen = self._request_generators.get(request_id)
        if gen is None:
            gen = self._request_generators[request_id] = torch.Generator().manual_seed(params.seed)
        return gen

    def sample(self, logits: torch.Tensor, request_ids: list[str], params: list[SamplingParams]) -> list[int]:
        """logits [B, V] (any float dtype, any device) → one token id per row.

        Masking and argmax stay on the logits' device (a GPU batch's logits are large); only the rows
        that sample at a temperature travel to the CPU, where the per-request generators live.
        """
        import torch

        with torch.inference_mode():
            logits = logits.to(torch.float32, copy=True)  # masked in place below
            if self._banned:
                logits[:, self._banned] = float("-inf")
            # ignore_eos: the request wants exactly max_tokens tokens, so EOS must never be chosen.
            no_eos = [i for i, p in enumerate(params) if p.ignore_eos]
            if no_eos:
                rows = torch.tensor(no_eos, device=logits.device)[:, None]
                logits[rows, torch.tensor(self._eos_token_ids, device=logits.device)] = float("-inf")
            tokens = logits.argmax(dim=-1).tolist()
            for i, p in enumerate(params):
                if not p.greedy:
                    tokens[i] = self._draw(logits[i].cpu(), p, self._generator_for(request_ids[i], p))
        return tokens

    @staticmethod
    def _draw(logits: torch.Tensor, p: SamplingParams, gen: torch.Generator) -> int:
        import torch

        probs = torch.softmax(logits / p.temperature, dim=-1)
        if p.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
            outside = sorted_probs.cumsum(0) - sorted_probs >= p.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=gen).item())

"""How one request wants its tokens chosen and when it stops."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SEED_RANGE", "SamplingParams"]

# What torch.Generator.manual_seed accepts (a signed or unsigned 64-bit integer).
SEED_RANGE = (-(2**63), 2**64 - 1)
# Below this temperature, logits / temperature overflow: such requests are served greedily, as in vLLM.
_GREEDY_BELOW = 1e-5


@dataclass(slots=True, frozen=True)
class SamplingParams:
    """temperature 0 (or below 1e-5) is greedy; `seed` makes a sampled request reproducible on its own."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    ignore_eos: bool = False
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None and not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ValueError(f"seed must be a 64-bit integer, got {self.seed}")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must not be empty")

    @property
    def greedy(self) -> bool:
        return self.temperature < _GREEDY_BELOW

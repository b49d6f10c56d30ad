"""What the engine hands out: each request's new text per step, and where each step's time went."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RequestOutput", "StepTiming"]


@dataclass(slots=True)
class RequestOutput:
    """What one step produced for one request. `text` and `token_ids` are the new part only."""

    request_id: str
    text: str
    token_ids: list[int]
    finished: bool
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # prompt tokens served from the prefix cache


@dataclass(slots=True)
class StepTiming:
    """Where one step's wall time went; `schedule_s` and `postprocess_s` are Python bookkeeping."""

    schedule_s: float = 0.0
    prepare_s: float = 0.0
    forward_s: float = 0.0
    sample_s: float = 0.0
    postprocess_s: float = 0.0
    batch_size: int = 0
    num_tokens: int = 0

    @property
    def total_s(self) -> float:
        return self.schedule_s + self.prepare_s + self.forward_s + self.sample_s + self.postprocess_s

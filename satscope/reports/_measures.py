"""When each unit of work counts, defined once for every figure that counts it.

Windows (``satscope/reports/_windows.py``), stages (``satscope/reports/_stages.py``) and the gate's noise model
(``satscope/reports/gates/_noise.py``) all turn requests into rates; they place the same work at the same
instant, so a gate's bootstrap interval is computed on the statistic it judges:

- a completed request at its ``end``;
- a streamed output token at its arrival; an unstreamed answer's tokens at its ``end``;
- a request's prompt tokens at its first token (prefill is done then), or at its ``end`` when it
  streamed none.

The prompt cache's share (the run's validity note and each stage's column) is counted once too:
cached prompt tokens over the prompt tokens of the requests whose server reported both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["cached_prompt_tokens", "prompt_time"]


def prompt_time(requests: pd.DataFrame) -> np.ndarray:
    """Per request, when its prompt tokens count: ``first_token``, else ``end`` (same clock as given)."""
    return requests["first_token"].fillna(requests["end"]).to_numpy(dtype=float)


def cached_prompt_tokens(requests: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per request: prompt tokens the server reported cached, its prompt tokens (float, NaN where
    not reported) and whether both were reported, the rows a cached share counts."""
    import numpy as np

    n = len(requests)
    if "prompt_tokens_cached" not in requests:
        return np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=bool)
    cached = requests["prompt_tokens_cached"].astype("float64").to_numpy()
    prompt = requests["prompt_tokens"].astype("float64").to_numpy()
    return cached, prompt, np.isfinite(cached) & np.isfinite(prompt)

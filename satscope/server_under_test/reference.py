"""A dense reference forward of LlamaModel's weights: contiguous K/V, plain PyTorch, no ops, no paging.

It is what the paged forward is checked against (tests/server/test_model.py): same weights, the
textbook computation, fp32 throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from satscope.server_under_test.model import LlamaModel

__all__ = ["dense_forward"]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.float()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


@torch.inference_mode()
def dense_forward(model: LlamaModel, token_ids: list[int]) -> torch.Tensor:
    """Logits [L, V] for every position of one sequence, computed from scratch."""
    cfg = model.cfg
    n, hq, hkv, d = len(token_ids), cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    ids = torch.tensor(token_ids, device=model.embed_tokens.device)
    cos = model.rope_cos[:n].unsqueeze(1)
    sin = model.rope_sin[:n].unsqueeze(1)
    x = model.embed_tokens.float()[ids]
    causal = torch.ones(n, n, dtype=torch.bool, device=ids.device).tril()
    for layer in model.layers:
        attn = layer.self_attn
        h = _rms_norm(x, layer.input_layernorm, cfg.norm_eps)
        q, k, v = (h @ attn.qkv_proj.float().T).split([hq * d, hkv * d, hkv * d], dim=-1)
        q = _rotate(q.view(n, hq, d), cos, sin)
        k = _rotate(k.view(n, hkv, d), cos, sin)
        v = v.view(n, hkv, d)
        group = hq // hkv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) * d**-0.5
        probs = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        o = torch.einsum("hqk,khd->qhd", probs, v).reshape(n, hq * d)
        x = x + o @ attn.o_proj.float().T
        h = _rms_norm(x, layer.post_attention_layernorm, cfg.norm_eps)
        gate, up = (h @ layer.gate_up_proj.float().T).chunk(2, dim=-1)
        x = x + (F.silu(gate) * up) @ layer.down_proj.float().T
    x = _rms_norm(x, model.norm, cfg.norm_eps)
    head = model.embed_tokens if model.lm_head is None else model.lm_head
    return x @ head.float().T

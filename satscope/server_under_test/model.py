"""The Llama decoder (RMSNorm, rotate-half RoPE, grouped-query attention, SwiGLU) over a paged KV cache.

Every kernel goes through `satscope.server_under_test.ops`. A batch is packed: the decode tokens (one per
sequence) come first and use paged decode attention; the prefill chunks follow and use prefill
attention, which reads their K/V back from the cache after `store_kvcache`, so chunked prefill and
recompute after preemption take the same path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from satscope.server_under_test import ops
from satscope.server_under_test.config import ModelConfig

__all__ = ["AttentionMetadata", "LlamaModel", "rope_tables"]


@dataclass(slots=True)
class AttentionMetadata:
    """Where each packed token's K/V go, and what each sequence attends to."""

    slot_mapping: torch.Tensor  # int64 [T]
    num_decode_tokens: int
    decode_block_tables: torch.Tensor  # int32 [B_decode, max_blocks]
    decode_context_lens: torch.Tensor  # int32 [B_decode]
    prefill_block_tables: torch.Tensor  # int32 [B_prefill, max_blocks]
    prefill_cu_seqlens_q: torch.Tensor  # int32 [B_prefill + 1]
    prefill_context_lens: torch.Tensor  # int32 [B_prefill]
    prefill_max_seqlen_q: int | None = None  # longest prefill chunk; spares the GPU a sync per layer

    def __post_init__(self) -> None:
        if self.decode_block_tables.shape[0] != self.num_decode_tokens:
            raise ValueError("one decode block table per decode token")
        if self.prefill_cu_seqlens_q.shape[0] != self.prefill_context_lens.shape[0] + 1:
            raise ValueError("cu_seqlens_q must have one more entry than prefill sequences")


def _llama3_scaled(inv_freq: torch.Tensor, scaling: tuple[float, float, float, int]) -> torch.Tensor:
    """Llama 3's frequency rescaling: long wavelengths slowed by `factor`, short ones kept, a blend between."""
    factor, low, high, original = scaling
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= original / high) & (wavelen <= original / low)
    return torch.where(medium, blended, scaled)


def rope_tables(model: ModelConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [max_position, head_dim // 2] in fp32."""
    d = model.head_dim
    inv_freq = 1.0 / (model.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64, device=device) / d))
    if model.rope_scaling is not None:
        inv_freq = _llama3_scaled(inv_freq, model.rope_scaling)
    inv_freq = inv_freq / model.rope_linear_factor
    freqs = torch.outer(torch.arange(model.max_position, dtype=torch.float64, device=device), inv_freq)
    return freqs.cos().float(), freqs.sin().float()


def _param(*shape: int, dtype: torch.dtype) -> nn.Parameter:
    # Uninitialised, in the serving dtype from the start (an 8B model never exists in fp32):
    # weights.py fills every parameter, random from a seed or from a checkpoint.
    return nn.Parameter(torch.empty(*shape, dtype=dtype), requires_grad=False)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.scale = self.head_dim**-0.5
        self.qkv_proj = _param((self.num_heads + 2 * self.num_kv_heads) * self.head_dim, cfg.hidden_size, dtype=dtype)
        self.o_proj = _param(cfg.hidden_size, self.num_heads * self.head_dim, dtype=dtype)

    def forward(
        self,
        x: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        t = x.shape[0]
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        q, k, v = F.linear(x, self.qkv_proj).split([q_size, kv_size, kv_size], dim=-1)
        q = q.reshape(t, self.num_heads, self.head_dim)
        k = k.reshape(t, self.num_kv_heads, self.head_dim)
        v = v.reshape(t, self.num_kv_heads, self.head_dim)
        ops.apply_rope(q, k, positions, cos, sin)
        ops.store_kvcache(k, v, k_cache, v_cache, meta.slot_mapping)
        nd = meta.num_decode_tokens
        parts = []
        if nd:
            parts.append(
                ops.paged_decode_attention(
                    q[:nd], k_cache, v_cache, meta.decode_block_tables, meta.decode_context_lens, self.scale
                )
            )
        if t > nd:
            parts.append(
                ops.prefill_attention(
                    q[nd:],
                    k_cache,
                    v_cache,
                    meta.prefill_block_tables,
                    meta.prefill_cu_seqlens_q,
                    meta.prefill_context_lens,
                    self.scale,
                    max_seqlen_q=meta.prefill_max_seqlen_q,
                )
            )
        out = parts[0] if len(parts) == 1 else torch.cat(parts)
        return F.linear(out.reshape(t, q_size), self.o_proj)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.eps = cfg.norm_eps
        self.input_layernorm = _param(cfg.hidden_size, dtype=dtype)
        self.self_attn = Attention(cfg, dtype)
        self.post_attention_layernorm = _param(cfg.hidden_size, dtype=dtype)
        self.gate_up_proj = _param(2 * cfg.intermediate_size, cfg.hidden_size, dtype=dtype)
        self.down_proj = _param(cfg.hidden_size, cfg.intermediate_size, dtype=dtype)

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is None:
            h, residual = ops.rms_norm(x, self.input_layernorm, self.eps), x
        else:
            h, residual = ops.rms_norm(x, self.input_layernorm, self.eps, residual)
        h = self.self_attn(h, positions, meta, k_cache, v_cache, cos, sin)
        h, residual = ops.rms_norm(h, self.post_attention_layernorm, self.eps, residual)
        h = F.linear(ops.silu_and_mul(F.linear(h, self.gate_up_proj)), self.down_proj)
        return h, residual


class LlamaModel(nn.Module):
    def __init__(self, cfg: ModelConfig, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = _param(cfg.vocab_size, cfg.hidden_size, dtype=dtype)
        self.layers = nn.ModuleList(DecoderLayer(cfg, dtype) for _ in range(cfg.num_layers))
        self.norm = _param(cfg.hidden_size, dtype=dtype)
        self.lm_head = None if cfg.tie_embeddings else _param(cfg.vocab_size, cfg.hidden_size, dtype=dtype)
        self.rope_cos: torch.Tensor | None = None
        self.rope_sin: torch.Tensor | None = None

    def setup_rope(self) -> None:
        """Build the cos/sin tables on the model's device (after the weights are placed)."""
        self.rope_cos, self.rope_sin = rope_tables(self.cfg, self.embed_tokens.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv_cache: torch.Tensor,
    ) -> torch.Tensor:
        """input_ids, positions int64 [T]; kv_cache [L, 2, NB, BS, Hkv, D] → final hidden states [T, H]."""
        if self.rope_cos is None or self.rope_sin is None:
            raise RuntimeError("call setup_rope() before the first forward")
        x = F.embedding(input_ids, self.embed_tokens)
        residual = None
        for i, layer in enumerate(self.layers):
            x, residual = layer(
                x, residual, positions, meta, kv_cache[i, 0], kv_cache[i, 1], self.rope_cos, self.rope_sin
            )
        x, _ = ops.rms_norm(x, self.norm, self.cfg.norm_eps, residual)
        return x

    def compute_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        head = self.embed_tokens if self.lm_head is None else self.lm_head
        return F.linear(hidden, head)

"""The model description a server publishes, for ``probes.json`` (``model``).

Our server says what it serves through ``satscope_model_info`` labels and ``satscope_model_*``
gauges; reports use weight and KV bytes to compute model bandwidth utilization. vLLM and SGLang
only name the model (label ``model_name``) in their metrics. Some engines publish facts at
``/v1/models`` instead: llama.cpp's ``llama-server`` gives each model a ``meta`` object with
``n_params`` and ``size`` (the weight file's bytes, which decoding reads once per step), so MBU
is computed for it too. Facts from ``/v1/models`` fill what the metrics did not say.
"""

from __future__ import annotations

import os
from typing import Any

from satscope.probes._exposition import Exposition

__all__ = ["listed_model_facts", "merge_model", "model_description", "models_meta"]

# llama.cpp `/v1/models` data[i].meta key -> our model key
_LLAMACPP_META = {
    "n_params": "parameters",
    "size": "weight_bytes",
    "n_ctx_train": "context_length",
    "n_embd": "hidden_size",
    "n_vocab": "vocab_size",
}

_SATSCOPE_GAUGES = {
    "parameters": "satscope_model_parameters",
    "weight_bytes": "satscope_model_weight_bytes",
    "layers": "satscope_model_layers",
    "kv_bytes_per_token": "satscope_model_kv_bytes_per_token",
    "flops_per_token": "satscope_model_flops_per_token",
    "kv_capacity_tokens": "satscope_kv_cache_capacity_tokens",
    "kv_capacity_blocks": "satscope_kv_cache_capacity_blocks",
}


def model_description(engine: str | None, expo: Exposition) -> dict[str, Any] | None:
    """What the server published about its model, or ``None`` when it published nothing."""
    if engine == "satscope":
        info = expo.series("satscope_model_info")
        labels = info[0][0] if info else {}
        model: dict[str, Any] = {"name": labels.get("model")}
        for key in ("dtype", "device", "kernels"):
            model[key] = labels.get(key)
        for key, name in _SATSCOPE_GAUGES.items():
            value = expo.total(name)
            model[key] = None if value is None else (int(value) if value.is_integer() else value)
        return model
    for name, series in expo.samples.items():
        if engine and name.startswith(("vllm:", "sglang:")):
            for labels, _ in series:
                if "model_name" in labels:
                    return {"name": labels["model_name"]}
    return None


def models_meta(listing: Any) -> dict[str, Any] | None:
    """Model facts from a ``/v1/models`` answer that carries them (llama.cpp ``meta``), else None."""
    data = listing.get("data") if isinstance(listing, dict) else None
    for entry in data if isinstance(data, list) else []:
        meta = entry.get("meta") if isinstance(entry, dict) else None
        if not isinstance(meta, dict):
            continue
        facts: dict[str, Any] = {"name": entry.get("id")}
        for key, ours in _LLAMACPP_META.items():
            value = meta.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                facts[ours] = int(value) if float(value).is_integer() else value
        if len(facts) > 1:
            return facts
    return None


def listed_model_facts(target: str, timeout_s: float) -> dict[str, Any] | None:
    """GET ``{target}/v1/models`` once (with ``SATSCOPE_API_KEY`` when set) for :func:`models_meta`."""
    import httpx

    base = target.rstrip("/")
    base = base[: -len("/v1")] if base.endswith("/v1") else base
    key = os.environ.get("SATSCOPE_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.get(f"{base}/v1/models", headers=headers, timeout=timeout_s, trust_env=False)
        return models_meta(response.json()) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


def merge_model(from_metrics: dict[str, Any] | None, listed: dict[str, Any] | None) -> dict[str, Any] | None:
    """The metrics' description, with what ``/v1/models`` adds where the metrics said nothing."""
    if not listed:
        return from_metrics
    merged = dict(from_metrics or {})
    for key, value in listed.items():
        if merged.get(key) is None:
            merged[key] = value
    return merged

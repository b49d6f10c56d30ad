"""The model description a server publishes, for ``probes.json`` (``model``).

Our server says what it serves through ``satscope_model_info`` labels and ``satscope_model_*``
gauges; reports use weight and KV bytes to compute model bandwidth utilization. vLLM and SGLang
only name the model (label ``model_name``); the other engines say nothing, so ``model`` is null.
"""

from __future__ import annotations

from typing import Any

from probes._exposition import Exposition

__all__ = ["model_description"]

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

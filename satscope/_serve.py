"""`satscope serve`: the bundled reference LLM server (OpenAI-compatible API, Prometheus /metrics).

Only typer and the standard library load at import time; torch, FastAPI and uvicorn load when the
command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from satscope.errors import SatscopeError

_GPU = "GPU sizing"
_LIMITS = "Limits"
_MODEL = "Model"


def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to bind. Loopback by default; binding elsewhere exposes the server to the network."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    preset: Annotated[
        str,
        typer.Option(
            help="Random-weight model shape: tiny (CPU, a few M parameters), llama-3.2-1b, llama-3.1-8b.",
            rich_help_panel=_MODEL,
        ),
    ] = "tiny",
    model: Annotated[
        str | None,
        typer.Option(
            help="Local Hugging Face Llama checkpoint directory (config.json, *.safetensors, tokenizer.json); "
            "overrides --preset.",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    served_model_name: Annotated[
        str | None,
        typer.Option(
            help="Model name the API answers to (default: the preset or the checkpoint folder's name).",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the random weights and of unseeded sampling.", rich_help_panel=_MODEL)
    ] = 0,
    dtype: Annotated[
        str,
        typer.Option(
            help="auto (float32 on CPU, bfloat16 on GPU), float32, float16, bfloat16.", rich_help_panel=_MODEL
        ),
    ] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.", rich_help_panel=_MODEL)] = "auto",
    kv_blocks: Annotated[
        int | None,
        typer.Option(
            help="KV-cache pool size in blocks (default: 16384 tokens' worth on CPU, sized from "
            "--gpu-memory-utilization on GPU). Small values make the pool run out under load.",
            rich_help_panel=_LIMITS,
        ),
    ] = None,
    block_size: Annotated[int, typer.Option(help="Tokens per KV block.", rich_help_panel=_LIMITS)] = 16,
    gpu_memory_utilization: Annotated[
        float,
        typer.Option(help="Fraction of GPU memory the server may use (weights + KV cache), 0-1.", rich_help_panel=_GPU),
    ] = 0.9,
    max_num_seqs: Annotated[
        int, typer.Option(help="Most sequences in the running batch.", rich_help_panel=_LIMITS)
    ] = 64,
    max_batched_tokens: Annotated[
        int, typer.Option(help="Token budget of one engine step (prefill chunks + decodes).", rich_help_panel=_LIMITS)
    ] = 2048,
    max_waiting: Annotated[
        int, typer.Option(help="Waiting-queue bound; beyond it requests get 429.", rich_help_panel=_LIMITS)
    ] = 256,
    max_model_len: Annotated[
        int | None,
        typer.Option(
            help="Context length: prompt + completion tokens (default: the model's).", rich_help_panel=_LIMITS
        ),
    ] = None,
    max_tokens_limit: Annotated[
        int | None,
        typer.Option(
            help="Largest max_tokens a request may ask for (default: the context length).", rich_help_panel=_LIMITS
        ),
    ] = None,
    max_body_bytes: Annotated[
        int,
        typer.Option(help="Largest request body accepted; larger ones get 413.", rich_help_panel=_LIMITS),
    ] = 1 << 20,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="SATSCOPE_API_KEY",
            show_envvar=True,
            help="Require 'Authorization: Bearer KEY' on /v1/* (401 otherwise).",
        ),
    ] = None,
    step_delay_ms: Annotated[
        float,
        typer.Option(
            help="Sleep this long in every engine step: an injected slowdown for testing performance gates.",
            rich_help_panel=_LIMITS,
        ),
    ] = 0.0,
    prefix_caching: Annotated[
        bool,
        typer.Option(
            "--prefix-caching/--no-prefix-caching",
            help="Share the KV blocks of prompt prefixes seen before (automatic prefix caching, as in vLLM).",
            rich_help_panel=_LIMITS,
        ),
    ] = True,
    torch_threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads for torch (default: 1 for models under 100M parameters, else torch's).",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug. Prompts and outputs are never logged.")
    ] = "info",
) -> None:
    """Serve the bundled reference LLM server: /v1/completions, /v1/chat/completions, /v1/models,
    /health and /metrics. SIGTERM drains requests in flight and exits."""
    from server_under_test.config import ConfigError, ServerConfig

    try:
        config = ServerConfig(
            preset=preset,
            model_path=model,
            served_model_name=served_model_name,
            seed=seed,
            dtype=dtype,
            device=device,
            kv_blocks=kv_blocks,
            block_size=block_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_num_seqs=max_num_seqs,
            max_batched_tokens=max_batched_tokens,
            max_waiting=max_waiting,
            max_model_len=max_model_len,
            max_tokens_limit=max_tokens_limit,
            max_body_bytes=max_body_bytes,
            api_key=api_key,
            step_delay_ms=step_delay_ms,
            enable_prefix_caching=prefix_caching,
            torch_threads=torch_threads,
            host=host,
            port=port,
            log_level=log_level,
        )
        from server_under_test.server import serve as run_server

        run_server(config)
    except ConfigError as exc:
        raise SatscopeError(str(exc), "see `satscope serve --help`") from None

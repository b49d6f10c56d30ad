"""Writing the load generator's files of the run directory, and the live progress figures.

``write_run_files`` turns a :class:`~satscope.loadgen.records.RunStore` into ``requests.parquet``,
``tokens.parquet`` and ``loadgen.parquet``, each atomically (a reader, or a crash, never sees half
a file): the CLI's empty files of a run stopped before its first record. During a run the record
writer (``satscope/loadgen/_record_writer.py``) writes them. ``progress`` computes the figures the live
display shows from the recent records the load generator keeps (``satscope/loadgen/recent.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satscope.loadgen.recent import RecentRecords
from satscope.loadgen.records import RunStore
from satscope.loadgen.shapes import Shape
from satscope.quantile import quantile
from satscope.run_format import LOADGEN_FILE, REQUESTS_FILE, TOKENS_FILE, write_parquet_atomic

__all__ = ["progress", "write_run_files"]


def write_run_files(run_dir: str | Path, store: RunStore, shape: Shape, shape_origin_s: float | None) -> int:
    """Write the three Parquet files; return the number of request records written."""
    requests, tokens, loadgen = store.tables(shape, shape_origin_s)
    d = Path(run_dir)
    write_parquet_atomic(d / TOKENS_FILE, tokens)
    write_parquet_atomic(d / LOADGEN_FILE, loadgen)
    # requests last: a reader that sees a request row finds its tokens already there
    write_parquet_atomic(d / REQUESTS_FILE, requests)
    return requests.num_rows


def progress(store: RecentRecords, now_s: float, window_s: float = 5.0) -> dict[str, Any]:
    """req/s, tokens/s, TTFT p50/p99 over the last ``window_s`` of finished requests; errors so far."""
    c = store.cols
    ends = c["end"]
    starts, firsts, chunks = c["start"], c["first_token"], c["output_chunks"]
    n = len(ends)
    i = n
    # records come roughly in end order; walk back from the newest until out of the window
    while i > 0 and ends[i - 1] >= now_s - window_s - 2.0:
        i -= 1
    recent = [j for j in range(i, n) if ends[j] >= now_s - window_s]
    ttfts = sorted(firsts[j] - starts[j] for j in recent if firsts[j] is not None)
    return {
        "requests": store.requests,
        "errors": store.errors,
        "req_per_s": len(recent) / window_s,
        "tokens_per_s": sum(chunks[j] for j in recent) / window_s,
        "ttft_p50_s": quantile(ttfts, 0.5),
        "ttft_p99_s": quantile(ttfts, 0.99),
    }

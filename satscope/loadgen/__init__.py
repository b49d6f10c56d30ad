"""loadgen: satscope's load generator on Locust.

The names here are the pure parts (shapes, arrival schedules, workloads, SSE parsing, records and
the run writer): importing them never imports locust or gevent, so the CLI and tests use them
in-process. The Locust side (``satscope/loadgen/_user.py``, ``satscope/loadgen/runner.py``) runs only in its own
process, started by `satscope run` (``satscope/_orchestrate.py``). Usage: ``docs/loadgen.md``.
"""

from satscope.loadgen.arrivals import arrival_times, next_gap
from satscope.loadgen.config import ENDPOINTS, LoadgenConfig
from satscope.loadgen.output import progress, write_run_files
from satscope.loadgen.records import RunStore, WorkerBuffer
from satscope.loadgen.saturation import loadgen_figures
from satscope.loadgen.shape_options import SHAPES, ShapeOptions, build_shape
from satscope.loadgen.shapes import Shape, ShapePoint, Stage, load_stages_toml
from satscope.loadgen.sse import LineKind, SseEvent, parse_line, request_body
from satscope.loadgen.workload import LengthDist, RequestSpec, Workload, WorkloadConfig, load_sharegpt

__all__ = [
    "ENDPOINTS",
    "SHAPES",
    "LengthDist",
    "LineKind",
    "LoadgenConfig",
    "RequestSpec",
    "RunStore",
    "Shape",
    "ShapeOptions",
    "ShapePoint",
    "SseEvent",
    "Stage",
    "WorkerBuffer",
    "Workload",
    "WorkloadConfig",
    "arrival_times",
    "build_shape",
    "load_sharegpt",
    "load_stages_toml",
    "loadgen_figures",
    "next_gap",
    "parse_line",
    "progress",
    "request_body",
    "write_run_files",
]

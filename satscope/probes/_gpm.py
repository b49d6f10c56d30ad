"""NVML GPM tier (Hopper and newer): rolling two-sample windows read with ``nvmlGpmMetricsGet``.

GPM ("GPU performance monitoring") is NVML's route to the same counters DCGM profiling uses:
DRAM bandwidth utilization and SM occupancy, which plain NVML "utilization" cannot tell. Each
tick takes one sample and computes metrics between it and the previous tick's sample, so the
window is the sampling interval (at least 100 ms, NVML's minimum for meaningful values).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["GPM_METRICS", "GpmSampler"]

_MIB = 1024.0 * 1024.0


@dataclass(slots=True, frozen=True)
class _GpmMetric:
    constant: str  # name of the pynvml constant holding the metric id
    canonical: str
    scale: float  # GPM gives percentages (0-100) and MiB/s; stored as ratios and bytes/s


GPM_METRICS: tuple[_GpmMetric, ...] = (
    _GpmMetric("NVML_GPM_METRIC_DRAM_BW_UTIL", "gpu_dram_bw_util", 0.01),
    _GpmMetric("NVML_GPM_METRIC_SM_OCCUPANCY", "gpu_sm_occupancy", 0.01),
    _GpmMetric("NVML_GPM_METRIC_SM_UTIL", "gpu_sm_active", 0.01),
    _GpmMetric("NVML_GPM_METRIC_ANY_TENSOR_UTIL", "gpu_tensor_active", 0.01),
    _GpmMetric("NVML_GPM_METRIC_HMMA_TENSOR_UTIL", "gpu_hmma_tensor_active", 0.01),
    _GpmMetric("NVML_GPM_METRIC_PCIE_TX_PER_SEC", "gpu_pcie_tx_bytes_per_s", _MIB),
    _GpmMetric("NVML_GPM_METRIC_PCIE_RX_PER_SEC", "gpu_pcie_rx_bytes_per_s", _MIB),
    _GpmMetric("NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC", "gpu_nvlink_tx_bytes_per_s", _MIB),
    _GpmMetric("NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC", "gpu_nvlink_rx_bytes_per_s", _MIB),
)


class GpmSampler:
    """GPM metrics of one GPU, or of one MIG instance (``gpu_instance_id``) of ``handle``'s GPU."""

    def __init__(self, nvml: ModuleType, handle: Any, gpu_instance_id: int | None = None) -> None:
        self._nvml = nvml
        self._handle = handle
        self._gi = gpu_instance_id
        self._metrics = [m for m in GPM_METRICS if hasattr(nvml, m.constant)]
        self._samples = [nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()]
        self._have_previous = False

    def _take(self, sample: Any) -> None:
        if self._gi is None:
            self._nvml.nvmlGpmSampleGet(self._handle, sample)
        else:
            self._nvml.nvmlGpmMigSampleGet(self._handle, self._gi, sample)

    def read(self) -> dict[str, float]:
        """Take a sample; return the metrics over the window since the previous call.

        The first call returns nothing (no window yet). A metric whose per-metric return code is
        not success (unsupported on this GPU or in this MIG profile) is left out, never zero.
        Raises ``NVMLError`` when the sample itself fails.
        """
        nvml = self._nvml
        previous, current = self._samples
        self._take(current)
        if not self._have_previous:
            self._have_previous = True
            self._samples.reverse()
            return {}
        request = nvml.c_nvmlGpmMetricsGet_t()
        request.version = nvml.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(self._metrics)
        request.sample1 = previous
        request.sample2 = current
        for i, metric in enumerate(self._metrics):
            request.metrics[i].metricId = getattr(nvml, metric.constant)
        nvml.nvmlGpmMetricsGet(request)
        self._samples.reverse()
        out: dict[str, float] = {}
        for i, metric in enumerate(self._metrics):
            result = request.metrics[i]
            if result.nvmlReturn == nvml.NVML_SUCCESS:
                out[metric.canonical] = float(result.value) * metric.scale
        return out

    def close(self) -> None:
        for sample in self._samples:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlGpmSampleFree(sample)
        self._samples = []

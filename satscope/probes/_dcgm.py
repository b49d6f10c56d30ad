"""DCGM exporter source: scrape dcgm-exporter's ``/metrics`` into the canonical GPU metrics.

DCGM's profiling fields (``DCGM_FI_PROF_*``) are the only route to DRAM activity and SM occupancy
on pre-Hopper datacenter GPUs (A100, L4), where NVML has no GPM. They are already ratios 0–1;
frame-buffer sizes come in MiB and the PCIe/NVLink fields in bytes per second.
"""

from __future__ import annotations

from satscope.probes._exposition import Exposition
from satscope.probes._http import MetricsEndpoint
from satscope.probes._source import Row

__all__ = ["DCGM_FIELDS", "DcgmProbe", "dcgm_rows"]

_MIB = 1024.0 * 1024.0

DCGM_FIELDS: dict[str, tuple[str, float]] = {
    "DCGM_FI_PROF_DRAM_ACTIVE": ("gpu_dram_bw_util", 1.0),
    "DCGM_FI_PROF_SM_OCCUPANCY": ("gpu_sm_occupancy", 1.0),
    "DCGM_FI_PROF_SM_ACTIVE": ("gpu_sm_active", 1.0),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": ("gpu_tensor_active", 1.0),
    "DCGM_FI_PROF_PIPE_TENSOR_HMMA_ACTIVE": ("gpu_hmma_tensor_active", 1.0),
    "DCGM_FI_DEV_FB_USED": ("gpu_mem_used_bytes", _MIB),
    "DCGM_FI_PROF_PCIE_TX_BYTES": ("gpu_pcie_tx_bytes_per_s", 1.0),
    "DCGM_FI_PROF_PCIE_RX_BYTES": ("gpu_pcie_rx_bytes_per_s", 1.0),
    "DCGM_FI_PROF_NVLINK_TX_BYTES": ("gpu_nvlink_tx_bytes_per_s", 1.0),
    "DCGM_FI_PROF_NVLINK_RX_BYTES": ("gpu_nvlink_rx_bytes_per_s", 1.0),
}
_FB_PARTS = ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED")


def _labels(series_labels: dict[str, str]) -> dict[str, str]:
    labels = {"gpu": series_labels.get("gpu", "")}
    if series_labels.get("GPU_I_ID"):
        labels["mig"] = series_labels["GPU_I_ID"]
    return labels


def dcgm_rows(t: float, expo: Exposition, source: str = "dcgm") -> list[Row]:
    """Canonical rows from one dcgm-exporter scrape, one per GPU (or MIG instance) and field."""
    rows: list[Row] = []
    for field, (metric, scale) in DCGM_FIELDS.items():
        for labels, value in expo.series(field):
            rows.append(Row(t, source, metric, value * scale, _labels(labels)))
    # Total memory is not exported as such: used + free + reserved, where all three are present.
    totals: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for field in _FB_PARTS:
        for labels, value in expo.series(field):
            totals.setdefault(tuple(sorted(_labels(labels).items())), []).append(value)
    for key, parts in totals.items():
        if len(parts) == len(_FB_PARTS):
            rows.append(Row(t, source, "gpu_mem_total_bytes", sum(parts) * _MIB, dict(key)))
    return rows


class DcgmProbe:
    """Periodic scraper of a dcgm-exporter URL (source ``dcgm``)."""

    name = "dcgm"

    def __init__(self, url: str, timeout_s: float = 2.0) -> None:
        self.endpoint = MetricsEndpoint(
            url if url.rstrip("/").endswith("/metrics") else f"{url.rstrip('/')}/metrics", timeout_s
        )
        self.url = self.endpoint.url
        self.scrapes_ok = 0

    @property
    def last_error(self) -> str | None:
        return self.endpoint.last_error

    def open(self) -> None:
        self.endpoint.open()

    def sample(self) -> list[Row]:
        scraped = self.endpoint.fetch_exposition()
        if scraped is None:
            return []
        self.scrapes_ok += 1
        return dcgm_rows(*scraped)

    @property
    def unavailable_reason(self) -> str | None:
        if self.scrapes_ok:
            return None
        return self.last_error or f"no scrape of {self.url} succeeded"

    def close(self) -> None:
        self.endpoint.close()

"""GPU probe over NVML (``pynvml`` from nvidia-ml-py): the GPM tier where supported, the basic tier always.

Basic tier, every NVIDIA GPU: "utilization" (the share of time any kernel ran, recorded as
``gpu_time_busy`` because it says nothing about bandwidth), memory used/total, power, energy since
start, clocks, and PCIe/NVLink byte counters turned into rates. GPM tier (Hopper+): DRAM bandwidth
utilization, SM occupancy/activity and tensor activity (``_gpm.py``); on GPM devices GPM's
PCIe/NVLink rates replace the basic counters. Any single query that fails (``NotSupported`` is
common) leaves that metric out; failing to start NVML at all makes the source unavailable with
one reason. MIG: each MIG instance is sampled through its own handle (memory) and its GPU
instance id (GPM); the parent GPU keeps power, clocks and energy.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from satscope.probes._counters import counter_increase
from satscope.probes._gpm import GpmSampler
from satscope.probes._source import Row, SourceUnavailable

__all__ = ["GpuProbe", "load_nvml"]

_KIB = 1024.0
_ALL_LINKS = 0xFFFFFFFF  # NVLink throughput fields: this scope id sums over every link
_EXPLAINED = {
    "NVMLError_LibraryNotFound": "no NVIDIA driver library (libnvidia-ml.so.1) on this machine",
    "NVMLError_DriverNotLoaded": "the NVIDIA kernel driver is not loaded",
    "NVMLError_NoPermission": "no permission to query the GPU (check device file permissions)",
}


def load_nvml() -> ModuleType:
    """Import ``pynvml``; raise :class:`SourceUnavailable` with the reason if that fails."""
    try:
        import pynvml
    except ImportError as exc:
        raise SourceUnavailable(f"pynvml is not importable (ImportError: {exc}); "
                                "install nvidia-ml-py") from exc
    return pynvml


def _reason(exc: Exception) -> str:
    kind = type(exc).__name__
    return f"NVML unavailable ({kind}: {exc}): {_EXPLAINED.get(kind, 'GPU probe disabled')}"


def _field_number(nvml: ModuleType, value: Any) -> float:
    """The number in an ``nvmlFieldValue_t``, read through the union member its type names."""
    member = {
        nvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
    }.get(value.valueType, "ullVal")
    return float(getattr(value.value, member))


@dataclass(slots=True)
class _Target:
    """One thing sampled: a whole GPU, or one MIG instance of a GPU."""

    labels: dict[str, str]
    handle: Any
    whole_gpu: bool
    gpm: GpmSampler | None = None
    counters: dict[str, tuple[float, float]] = field(default_factory=dict)
    energy_start_mj: float | None = None


class GpuProbe:
    """Periodic NVML sampler (source ``gpu``). ``nvml`` is the pynvml module (injectable for tests)."""

    name = "gpu"

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml
        self._targets: list[_Target] = []
        self.gpus: list[dict[str, Any]] = []
        self.errors: dict[str, str] = {}

    def open(self) -> None:
        nvml = self._nvml if self._nvml is not None else load_nvml()
        self._nvml = nvml
        try:
            nvml.nvmlInit()
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            raise SourceUnavailable(_reason(exc)) from exc
        if count == 0:
            nvml.nvmlShutdown()
            raise SourceUnavailable("NVML found no GPU on this machine")
        for index in range(count):
            try:
                self._add_gpu(index)
            except nvml.NVMLError as exc:  # one GPU NVML cannot describe does not hide the others
                self.errors[f"gpu{index}"] = f"{type(exc).__name__}: {exc}"
        if not self._targets:
            nvml.nvmlShutdown()
            raise SourceUnavailable(f"NVML could not open any of {count} GPU(s): "
                                    + "; ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())))

    def _add_gpu(self, index: int) -> None:
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else str(name)
        gpm = self._call(nvml.nvmlGpmQueryDeviceSupport, handle)
        gpm_ok = bool(gpm is not None and gpm.isSupportedDevice)
        memory = self._call(nvml.nvmlDeviceGetMemoryInfo, handle, nvml.nvmlMemory_v2)
        mig = self._call(nvml.nvmlDeviceGetMigMode, handle)
        mig_on = bool(mig is not None and mig[0] == nvml.NVML_DEVICE_MIG_ENABLE)
        self.gpus.append({"index": index, "name": name,
                          "memory_total_bytes": None if memory is None else int(memory.total),
                          "gpm": gpm_ok, "mig": mig_on})
        labels = {"gpu": str(index)}
        whole = _Target(labels, handle, whole_gpu=True)
        self._targets.append(whole)
        if not mig_on:
            whole.gpm = self._gpm(handle, None) if gpm_ok else None
            return
        for slot in range(self._call(nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0):
            mig_handle = self._call(nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            if mig_handle is None:
                continue  # empty slot: NVML answers NotFound
            gi = nvml.nvmlDeviceGetGpuInstanceId(mig_handle)
            sampler = self._gpm(handle, gi) if gpm_ok else None
            self._targets.append(_Target({**labels, "mig": str(gi)}, mig_handle, False, sampler))

    def _gpm(self, handle: Any, gpu_instance_id: int | None) -> GpmSampler | None:
        try:
            return GpmSampler(self._nvml, handle, gpu_instance_id)
        except self._nvml.NVMLError as exc:
            self.errors.setdefault("gpm", f"GPM sampling could not start ({type(exc).__name__}: {exc})")
            return None

    def _call(self, fn: Any, *args: Any) -> Any:
        """Call an NVML query; ``None`` (metric absent) if NVML refuses, remembering why once."""
        try:
            return fn(*args)
        except self._nvml.NVMLError as exc:
            self.errors.setdefault(fn.__name__, f"{type(exc).__name__}: {exc}")
            return None

    def sample(self) -> list[Row]:
        rows: list[Row] = []
        for target in self._targets:
            t = time.monotonic()
            values = self._basic(target, t)
            if target.gpm is not None:
                try:
                    values.update(target.gpm.read())
                except self._nvml.NVMLError as exc:
                    self.errors.setdefault("gpm", f"{type(exc).__name__}: {exc}")
            rows.extend(Row(t, self.name, metric, value, target.labels) for metric, value in values.items())
        return rows

    def _basic(self, target: _Target, t: float) -> dict[str, float]:
        nvml, handle, out = self._nvml, target.handle, {}
        memory = self._call(nvml.nvmlDeviceGetMemoryInfo, handle, nvml.nvmlMemory_v2)
        if memory is not None:
            out["gpu_mem_used_bytes"] = float(memory.used)
            out["gpu_mem_total_bytes"] = float(memory.total)
        if not target.whole_gpu:
            return out
        util = self._call(nvml.nvmlDeviceGetUtilizationRates, handle)
        if util is not None:
            out["gpu_time_busy"] = util.gpu / 100.0
            out["gpu_mem_time_busy"] = util.memory / 100.0
        power_mw = self._call(nvml.nvmlDeviceGetPowerUsage, handle)
        if power_mw is not None:
            out["gpu_power_w"] = power_mw / 1000.0
        energy_mj = self._call(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        if energy_mj is not None:
            if target.energy_start_mj is None:
                target.energy_start_mj = float(energy_mj)
            out["gpu_energy_j"] = (energy_mj - target.energy_start_mj) / 1000.0
        clocks = (("gpu_sm_clock_mhz", nvml.NVML_CLOCK_SM), ("gpu_mem_clock_mhz", nvml.NVML_CLOCK_MEM))
        for metric, clock in clocks:
            mhz = self._call(nvml.nvmlDeviceGetClockInfo, handle, clock)
            if mhz is not None:
                out[metric] = float(mhz)
        if target.gpm is None:
            out.update(self._link_rates(target, t))
        return out

    def _link_rates(self, target: _Target, t: float) -> dict[str, float]:
        """PCIe and NVLink byte counters (field values) as rates since the previous sample."""
        nvml = self._nvml
        fields = [
            ("gpu_pcie_tx_bytes_per_s", (nvml.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, 0), 1.0),
            ("gpu_pcie_rx_bytes_per_s", (nvml.NVML_FI_DEV_PCIE_COUNT_RX_BYTES, 0), 1.0),
            ("gpu_nvlink_tx_bytes_per_s", (nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, _ALL_LINKS), _KIB),
            ("gpu_nvlink_rx_bytes_per_s", (nvml.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, _ALL_LINKS), _KIB),
        ]
        values = self._call(nvml.nvmlDeviceGetFieldValues, target.handle, [f for _, f, _ in fields])
        out: dict[str, float] = {}
        if values is None:
            return out
        for (metric, _, scale), value in zip(fields, values, strict=True):
            if value.nvmlReturn != nvml.NVML_SUCCESS:
                continue
            current = _field_number(nvml, value) * scale
            previous = target.counters.get(metric)
            target.counters[metric] = (t, current)
            if previous is not None and t > previous[0]:
                out[metric] = counter_increase(previous[1], current) / (t - previous[0])
        return out

    def close(self) -> None:
        if self._nvml is None or not self._targets:
            return
        for target in self._targets:
            if target.gpm is not None:
                target.gpm.close()
        self._targets = []
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()

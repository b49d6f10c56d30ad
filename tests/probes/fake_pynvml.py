"""A fake ``pynvml`` that follows nvidia-ml-py's real API, for testing the GPU probe without a GPU.

It is the real module with the library calls replaced: constants, ctypes structures
(``c_nvmlMemory_v2_t``, ``c_nvmlGpmMetricsGet_t``, ``c_nvmlFieldValue_t``...) and the error classes
(``NVMLError(code)`` turning into ``NVMLError_NotSupported`` etc.) are nvidia-ml-py's own, so the
probe is tested against the same types and error codes it meets on a real GPU. Each fake GPU is
described by a :class:`FakeGpu`; GPM samples carry a fake clock and cumulative counters, and
``nvmlGpmMetricsGet`` computes each metric over the window between its two samples, as NVML does.
"""

from __future__ import annotations

import ctypes
import importlib
import types
from dataclasses import dataclass, field
from typing import Any

real = importlib.import_module("pynvml")

__all__ = ["FakeGpu", "make_fake_pynvml"]


@dataclass
class FakeGpu:
    """One fake GPU. Percentages as NVML reports them (0-100); counters advance on every read."""

    name: str = "NVIDIA H100 80GB HBM3"
    memory_total: int = 80 * 1024**3
    memory_used: int = 20 * 1024**3
    util_gpu: int = 97
    util_memory: int = 60
    power_mw: int = 650_000
    energy_step_mj: int = 5_000  # added to the energy counter on every read
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    gpm: bool = True
    # GPM metric id -> value (percent, or MiB/s for rates) while this setting holds
    gpm_values: dict[int, float] = field(default_factory=dict)
    gpm_unsupported: set[int] = field(default_factory=set)
    pcie_step_bytes: int = 1_000_000  # per read of NVML_FI_DEV_PCIE_COUNT_*_BYTES
    nvlink_step_kib: int | None = None  # None: no NVLink (the field answers NotSupported)
    mig_instances: list[int] = field(default_factory=list)  # GPU instance ids; non-empty = MIG on
    failing: dict[str, int] = field(default_factory=dict)  # function name -> NVML error code


@dataclass
class _Handle:
    gpu: FakeGpu
    index: int
    gpu_instance: int | None = None


@dataclass
class _Snapshot:
    gpu: FakeGpu
    clock: float
    busy: dict[int, float]


def make_fake_pynvml(gpus: list[FakeGpu], init_error: int | None = None) -> types.ModuleType:
    """A module object usable wherever ``pynvml`` is: real constants/types, fake devices."""
    nvml = types.ModuleType("pynvml")
    nvml.__dict__.update({k: v for k, v in real.__dict__.items() if not k.startswith("__")})
    state: dict[str, Any] = {"init": False, "energy": {}, "pcie": {}, "nvlink": {}, "snapshots": {},
                             "clock": {}, "busy": {}}

    def check(handle: _Handle, fn: str) -> None:
        if not state["init"]:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        if fn in handle.gpu.failing:
            raise real.NVMLError(handle.gpu.failing[fn])

    def nvmlInit() -> None:
        if init_error is not None:
            raise real.NVMLError(init_error)
        state["init"] = True

    def nvmlShutdown() -> None:
        if not state["init"]:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        state["init"] = False

    def nvmlDeviceGetCount() -> int:
        if not state["init"]:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        return len(gpus)

    def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
        if not state["init"]:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        if not 0 <= index < len(gpus):
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(gpus[index], index)

    def nvmlDeviceGetName(handle: _Handle) -> str:
        check(handle, "nvmlDeviceGetName")
        return handle.gpu.name if handle.gpu_instance is None else f"{handle.gpu.name} MIG 3g.40gb"

    def nvmlDeviceGetMemoryInfo(handle: _Handle, version: int | None = None) -> Any:
        check(handle, "nvmlDeviceGetMemoryInfo")
        memory = real.c_nvmlMemory_v2_t() if version else real.c_nvmlMemory_t()
        share = 1 if handle.gpu_instance is None else max(len(handle.gpu.mig_instances), 1)
        memory.total = handle.gpu.memory_total // share
        memory.used = handle.gpu.memory_used // share
        memory.free = memory.total - memory.used
        if version:
            memory.version = version
        return memory

    def nvmlDeviceGetUtilizationRates(handle: _Handle) -> Any:
        check(handle, "nvmlDeviceGetUtilizationRates")
        if handle.gpu.mig_instances:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)  # as on a real GPU in MIG mode
        util = real.c_nvmlUtilization_t()
        util.gpu, util.memory = handle.gpu.util_gpu, handle.gpu.util_memory
        return util

    def nvmlDeviceGetPowerUsage(handle: _Handle) -> int:
        check(handle, "nvmlDeviceGetPowerUsage")
        return handle.gpu.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(handle: _Handle) -> int:
        check(handle, "nvmlDeviceGetTotalEnergyConsumption")
        value = state["energy"].get(handle.index, 123_456_789) + handle.gpu.energy_step_mj
        state["energy"][handle.index] = value
        return value

    def nvmlDeviceGetClockInfo(handle: _Handle, clock_type: int) -> int:
        check(handle, "nvmlDeviceGetClockInfo")
        if clock_type == real.NVML_CLOCK_SM:
            return handle.gpu.sm_clock_mhz
        if clock_type == real.NVML_CLOCK_MEM:
            return handle.gpu.mem_clock_mhz
        raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)

    def nvmlDeviceGetFieldValues(handle: _Handle, field_ids: list[Any]) -> Any:
        check(handle, "nvmlDeviceGetFieldValues")
        values = (real.c_nvmlFieldValue_t * len(field_ids))()
        for i, spec in enumerate(field_ids):
            field_id, scope = spec if isinstance(spec, tuple) else (spec, 0)
            values[i].fieldId, values[i].scopeId = field_id, scope
            values[i].valueType = real.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG
            key = (handle.index, field_id)
            if field_id in (real.NVML_FI_DEV_PCIE_COUNT_TX_BYTES, real.NVML_FI_DEV_PCIE_COUNT_RX_BYTES):
                state["pcie"][key] = state["pcie"].get(key, 0) + handle.gpu.pcie_step_bytes
                values[i].value.ullVal = state["pcie"][key]
                values[i].nvmlReturn = real.NVML_SUCCESS
            elif (field_id in (real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, real.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX)
                  and handle.gpu.nvlink_step_kib is not None and scope == 0xFFFFFFFF):
                state["nvlink"][key] = state["nvlink"].get(key, 0) + handle.gpu.nvlink_step_kib
                values[i].value.ullVal = state["nvlink"][key]
                values[i].nvmlReturn = real.NVML_SUCCESS
            else:
                values[i].nvmlReturn = real.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetMigMode(handle: _Handle) -> list[int]:
        check(handle, "nvmlDeviceGetMigMode")
        mode = real.NVML_DEVICE_MIG_ENABLE if handle.gpu.mig_instances else real.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(handle: _Handle) -> int:
        check(handle, "nvmlDeviceGetMaxMigDeviceCount")
        return 7 if handle.gpu.mig_instances else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(handle: _Handle, index: int) -> _Handle:
        check(handle, "nvmlDeviceGetMigDeviceHandleByIndex")
        if index >= len(handle.gpu.mig_instances):
            raise real.NVMLError(real.NVML_ERROR_NOT_FOUND)
        return _Handle(handle.gpu, handle.index, handle.gpu.mig_instances[index])

    def nvmlDeviceGetGpuInstanceId(handle: _Handle) -> int:
        check(handle, "nvmlDeviceGetGpuInstanceId")
        if handle.gpu_instance is None:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return handle.gpu_instance

    def nvmlGpmQueryDeviceSupport(handle: _Handle) -> Any:
        check(handle, "nvmlGpmQueryDeviceSupport")
        support = real.c_nvmlGpmSupport_t()
        support.version = real.NVML_GPM_SUPPORT_VERSION
        support.isSupportedDevice = int(handle.gpu.gpm)
        return support

    def nvmlGpmSampleAlloc() -> Any:
        if not state["init"]:
            raise real.NVMLError(real.NVML_ERROR_UNINITIALIZED)
        return ctypes.pointer(real.struct_c_nvmlGpmSample_t())

    def nvmlGpmSampleFree(sample: Any) -> None:
        state["snapshots"].pop(ctypes.addressof(sample.contents), None)

    def take(handle: _Handle, gpu_instance: int | None, sample: Any) -> Any:
        check(handle, "nvmlGpmSampleGet")
        if not handle.gpu.gpm:
            raise real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)
        key = (handle.index, gpu_instance)
        clock = state["clock"].get(key, 0.0) + 1.0  # one fake second between samples
        busy = state["busy"].setdefault(key, {})
        for metric_id, value in handle.gpu.gpm_values.items():
            busy[metric_id] = busy.get(metric_id, 0.0) + value * 1.0
        state["clock"][key] = clock
        state["snapshots"][ctypes.addressof(sample.contents)] = _Snapshot(handle.gpu, clock, dict(busy))
        return sample

    def nvmlGpmSampleGet(handle: _Handle, sample: Any) -> Any:
        return take(handle, None, sample)

    def nvmlGpmMigSampleGet(handle: _Handle, gpu_instance_id: int, sample: Any) -> Any:
        if gpu_instance_id not in handle.gpu.mig_instances:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        return take(handle, gpu_instance_id, sample)

    def nvmlGpmMetricsGet(request: Any) -> Any:
        if request.version != real.NVML_GPM_METRICS_GET_VERSION:
            raise real.NVMLError(real.NVML_ERROR_ARGUMENT_VERSION_MISMATCH)
        first = state["snapshots"].get(ctypes.addressof(request.sample1.contents))
        second = state["snapshots"].get(ctypes.addressof(request.sample2.contents))
        if first is None or second is None or second.clock <= first.clock:
            raise real.NVMLError(real.NVML_ERROR_INVALID_ARGUMENT)
        for i in range(request.numMetrics):
            metric = request.metrics[i]
            if metric.metricId in second.gpu.gpm_unsupported or metric.metricId not in second.busy:
                metric.nvmlReturn = real.NVML_ERROR_NOT_SUPPORTED
                continue
            metric.nvmlReturn = real.NVML_SUCCESS
            elapsed = second.clock - first.clock
            metric.value = (second.busy[metric.metricId] - first.busy.get(metric.metricId, 0.0)) / elapsed
        return request

    for fn in (nvmlInit, nvmlShutdown, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex, nvmlDeviceGetName,
               nvmlDeviceGetMemoryInfo, nvmlDeviceGetUtilizationRates, nvmlDeviceGetPowerUsage,
               nvmlDeviceGetTotalEnergyConsumption, nvmlDeviceGetClockInfo, nvmlDeviceGetFieldValues,
               nvmlDeviceGetMigMode, nvmlDeviceGetMaxMigDeviceCount, nvmlDeviceGetMigDeviceHandleByIndex,
               nvmlDeviceGetGpuInstanceId, nvmlGpmQueryDeviceSupport, nvmlGpmSampleAlloc, nvmlGpmSampleFree,
               nvmlGpmSampleGet, nvmlGpmMigSampleGet, nvmlGpmMetricsGet):
        setattr(nvml, fn.__name__, fn)
    return nvml

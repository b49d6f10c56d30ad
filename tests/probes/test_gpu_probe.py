"""The NVML GPU probe through a fake ``pynvml`` built on nvidia-ml-py's real types and error codes."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from satscope.probes._nvml import GpuProbe
from satscope.probes._source import SourceUnavailable
from tests.probes.fake_pynvml import FakeGpu, make_fake_pynvml, real

GPM = {
    real.NVML_GPM_METRIC_DRAM_BW_UTIL: 90.0,
    real.NVML_GPM_METRIC_SM_OCCUPANCY: 40.0,
    real.NVML_GPM_METRIC_SM_UTIL: 95.0,
    real.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 30.0,
    real.NVML_GPM_METRIC_HMMA_TENSOR_UTIL: 25.0,
    real.NVML_GPM_METRIC_PCIE_TX_PER_SEC: 10.0,
    real.NVML_GPM_METRIC_PCIE_RX_PER_SEC: 20.0,
    real.NVML_GPM_METRIC_NVLINK_TOTAL_TX_PER_SEC: 100.0,
    real.NVML_GPM_METRIC_NVLINK_TOTAL_RX_PER_SEC: 200.0,
}
MIB = 1024 * 1024


def _open(*gpus: FakeGpu) -> GpuProbe:
    probe = GpuProbe(make_fake_pynvml(list(gpus)))
    probe.open()
    return probe


def _by_target(rows: list) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        key = ",".join(f"{k}={v}" for k, v in sorted(row.labels.items()))
        assert row.metric not in out.setdefault(key, {}), f"duplicate {row.metric} for {key}"
        out[key][row.metric] = row.value
    return out


def test_gpm_tier_reads_bandwidth_and_occupancy_as_ratios_over_a_window() -> None:
    gpu = FakeGpu(gpm_values=dict(GPM))
    probe = _open(gpu)
    assert probe.gpus == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_total_bytes": 80 * 1024**3,
                           "gpm": True, "mig": False}]
    first = _by_target(probe.sample())["gpu=0"]
    assert "gpu_dram_bw_util" not in first  # no window yet
    assert first["gpu_time_busy"] == pytest.approx(0.97)
    second = _by_target(probe.sample())["gpu=0"]
    assert second["gpu_dram_bw_util"] == pytest.approx(0.90)
    assert second["gpu_sm_occupancy"] == pytest.approx(0.40)
    assert second["gpu_sm_active"] == pytest.approx(0.95)
    assert second["gpu_tensor_active"] == pytest.approx(0.30)
    assert second["gpu_hmma_tensor_active"] == pytest.approx(0.25)
    assert second["gpu_pcie_tx_bytes_per_s"] == pytest.approx(10 * MIB)
    assert second["gpu_nvlink_rx_bytes_per_s"] == pytest.approx(200 * MIB)
    # The window is between consecutive samples: a change shows up as the mean over the next window.
    gpu.gpm_values[real.NVML_GPM_METRIC_DRAM_BW_UTIL] = 10.0
    third = _by_target(probe.sample())["gpu=0"]
    assert third["gpu_dram_bw_util"] == pytest.approx(0.10)
    probe.close()


def test_gpm_metric_the_driver_does_not_support_is_absent() -> None:
    probe = _open(FakeGpu(gpm_values=dict(GPM), gpm_unsupported={real.NVML_GPM_METRIC_HMMA_TENSOR_UTIL}))
    probe.sample()
    values = _by_target(probe.sample())["gpu=0"]
    assert "gpu_hmma_tensor_active" not in values
    assert values["gpu_tensor_active"] == pytest.approx(0.30)


def test_basic_tier_on_a_gpu_without_gpm() -> None:
    gpu = FakeGpu(name="NVIDIA A100-SXM4-40GB", gpm=False, nvlink_step_kib=2048)
    probe = _open(gpu)
    first = probe.sample()
    second = probe.sample()
    values = _by_target(second)["gpu=0"]
    assert not {"gpu_dram_bw_util", "gpu_sm_occupancy", "gpu_sm_active"} & set(values)
    assert values["gpu_time_busy"] == pytest.approx(0.97)  # "utilization": time busy, not bandwidth
    assert values["gpu_mem_time_busy"] == pytest.approx(0.60)
    assert values["gpu_mem_used_bytes"] == 20 * 1024**3
    assert values["gpu_mem_total_bytes"] == 80 * 1024**3
    assert values["gpu_power_w"] == pytest.approx(650.0)
    assert values["gpu_energy_j"] == pytest.approx(5.0)  # one 5,000 mJ step since the probe started
    assert values["gpu_sm_clock_mhz"] == 1980 and values["gpu_mem_clock_mhz"] == 2619
    dt = second[0].t - first[0].t
    assert values["gpu_pcie_tx_bytes_per_s"] == pytest.approx(1_000_000 / dt, rel=0.05)
    assert values["gpu_nvlink_tx_bytes_per_s"] == pytest.approx(2048 * 1024 / dt, rel=0.05)
    assert _by_target(first)["gpu=0"]["gpu_energy_j"] == 0.0
    assert "gpu_pcie_tx_bytes_per_s" not in _by_target(first)["gpu=0"]  # a counter needs two reads


def test_a_query_nvml_refuses_leaves_only_that_metric_out() -> None:
    gpu = FakeGpu(gpm=False, failing={"nvmlDeviceGetPowerUsage": real.NVML_ERROR_NOT_SUPPORTED,
                                      "nvmlDeviceGetFieldValues": real.NVML_ERROR_NO_PERMISSION})
    probe = _open(gpu)
    values = _by_target(probe.sample())["gpu=0"]
    assert "gpu_power_w" not in values and "gpu_pcie_tx_bytes_per_s" not in values
    assert values["gpu_time_busy"] == pytest.approx(0.97)
    assert "NVMLError_NotSupported" in probe.errors["nvmlDeviceGetPowerUsage"]


def test_gpu_lost_mid_run_yields_no_rows_and_no_exception() -> None:
    gpu = FakeGpu(gpm_values=dict(GPM))
    probe = _open(gpu)
    probe.sample()
    gpu.failing = {name: real.NVML_ERROR_GPU_IS_LOST for name in (
        "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetClockInfo", "nvmlGpmSampleGet")}
    assert probe.sample() == []
    assert "NVMLError_GpuIsLost" in probe.errors["gpm"]


def test_mig_instances_sampled_through_their_own_handles() -> None:
    gpu = FakeGpu(gpm_values=dict(GPM), mig_instances=[1, 2])
    probe = _open(gpu)
    assert probe.gpus[0]["mig"] is True
    probe.sample()
    targets = _by_target(probe.sample())
    assert set(targets) == {"gpu=0", "gpu=0,mig=1", "gpu=0,mig=2"}
    assert targets["gpu=0,mig=1"]["gpu_dram_bw_util"] == pytest.approx(0.90)
    assert targets["gpu=0,mig=2"]["gpu_mem_total_bytes"] == 40 * 1024**3
    assert "gpu_power_w" not in targets["gpu=0,mig=1"]  # power and clocks belong to the whole GPU
    assert targets["gpu=0"]["gpu_power_w"] == pytest.approx(650.0)
    assert "gpu_time_busy" not in targets["gpu=0"]  # NVML has no utilization in MIG mode


def test_two_gpus_are_labelled_by_index() -> None:
    probe = _open(FakeGpu(gpm_values=dict(GPM)), FakeGpu(name="NVIDIA H200", gpm_values=dict(GPM)))
    assert [g["name"] for g in probe.gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA H200"]
    assert set(_by_target(probe.sample())) == {"gpu=0", "gpu=1"}


@pytest.mark.parametrize(("code", "kind"), [
    (real.NVML_ERROR_DRIVER_NOT_LOADED, "NVMLError_DriverNotLoaded"),
    (real.NVML_ERROR_NO_PERMISSION, "NVMLError_NoPermission"),
    (real.NVML_ERROR_LIBRARY_NOT_FOUND, "NVMLError_LibraryNotFound"),
])
def test_nvml_that_cannot_start_gives_one_clear_reason(code: int, kind: str) -> None:
    probe = GpuProbe(make_fake_pynvml([FakeGpu()], init_error=code))
    with pytest.raises(SourceUnavailable, match=kind):
        probe.open()


def test_no_gpu_at_all_is_unavailable() -> None:
    with pytest.raises(SourceUnavailable, match="no GPU"):
        GpuProbe(make_fake_pynvml([])).open()


def test_missing_pynvml_is_an_import_error_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(SourceUnavailable, match="ImportError"):
        GpuProbe().open()


@pytest.mark.skipif(ctypes.util.find_library("nvidia-ml") is not None, reason="an NVIDIA driver is installed")
def test_real_pynvml_without_a_driver_says_library_not_found() -> None:
    with pytest.raises(SourceUnavailable, match="NVMLError_LibraryNotFound"):
        GpuProbe().open()  # the real nvidia-ml-py, on this machine without libnvidia-ml.so.1


def test_a_gpu_nvml_cannot_describe_does_not_hide_the_others() -> None:
    refusing = FakeGpu(name="NVIDIA H200", failing={"nvmlDeviceGetName": real.NVML_ERROR_NO_PERMISSION})
    probe = _open(FakeGpu(gpm_values=dict(GPM)), refusing)
    assert [g["index"] for g in probe.gpus] == [0]
    assert "NVMLError_NoPermission" in probe.errors["gpu1"]
    assert set(_by_target(probe.sample())) == {"gpu=0"}
    with pytest.raises(SourceUnavailable, match="could not open any of 1 GPU"):
        _open(refusing)

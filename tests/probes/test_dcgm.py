"""DCGM exporter source: a dcgm-exporter exposition served on loopback -> canonical GPU metrics."""

from __future__ import annotations

import pytest

from satscope.probes._dcgm import DcgmProbe
from tests.probes.conftest import ExpositionServer, fixture_text

MIB = 1024 * 1024


def test_dcgm_exporter_fields_become_canonical_gpu_metrics(exposition_server: ExpositionServer) -> None:
    exposition_server.body = fixture_text("dcgm.txt")
    probe = DcgmProbe(exposition_server.url)
    probe.open()
    try:
        rows = probe.sample()
    finally:
        probe.close()
    got = {(r.metric, tuple(sorted(r.labels.items()))): r.value for r in rows}
    assert all(r.source == "dcgm" for r in rows)
    gpu0 = (("gpu", "0"),)
    assert got[("gpu_dram_bw_util", gpu0)] == pytest.approx(0.812)  # already a ratio
    assert got[("gpu_sm_occupancy", gpu0)] == pytest.approx(0.35)
    assert got[("gpu_sm_active", gpu0)] == pytest.approx(0.9)
    assert got[("gpu_tensor_active", gpu0)] == pytest.approx(0.2)
    assert got[("gpu_mem_used_bytes", gpu0)] == 10000 * MIB
    assert got[("gpu_mem_total_bytes", gpu0)] == (10000 + 30000 + 960) * MIB
    assert got[("gpu_pcie_tx_bytes_per_s", gpu0)] == 1_500_000
    assert got[("gpu_dram_bw_util", (("gpu", "1"),))] == 0.0  # a real zero the exporter reported
    assert ("gpu_sm_occupancy", (("gpu", "1"),)) not in got  # not exported for GPU 1: missing
    assert got[("gpu_dram_bw_util", (("gpu", "2"), ("mig", "1")))] == 0.5
    assert not any(metric == "gpu_hmma_tensor_active" for metric, _ in got)
    assert probe.unavailable_reason is None


def test_dcgm_url_that_never_answers_is_reported(exposition_server: ExpositionServer) -> None:
    exposition_server.status = 503
    probe = DcgmProbe(exposition_server.url + "/metrics")
    probe.open()
    assert probe.sample() == []
    probe.close()
    assert "503" in (probe.unavailable_reason or "")

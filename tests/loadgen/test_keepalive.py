"""Connection reuse against real loopback servers: one that honours keep-alive, and one that
advertises it but closes after every response (as llama.cpp's llama-server does). No request may be
lost, and a resent request is timed from its resend."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.loadgen.conftest import run_satscope

_CLOSE_S = 0.03  # the closing server waits this long after a response before it closes


@pytest.mark.parametrize("closes", [True, False], ids=["closes-after-response", "honours-keep-alive"])
def test_no_request_is_lost_to_a_closed_keep_alive_connection(server_factory, tmp_path, closes: bool) -> None:
    server = server_factory(ttft=0.01, itl=0.005, close_after_response=_CLOSE_S if closes else None)
    out = tmp_path / "run"
    res = run_satscope(
        "--target", server.url, "--users", "3", "--duration", "3", "--output-len", "6", "--out", str(out)
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    manifest = json.loads((out / "run.json").read_text())
    req = pq.read_table(out / "requests.parquet").to_pandas()
    rec = server.records()
    assert (req.status == "ok").all(), req.error.unique()
    assert len(req) == rec["served"] == manifest["loadgen"]["records_written"] > 20
    retries = manifest["loadgen"]["connection_retries"]
    assert retries == int(req.retried.sum())
    if not closes:
        assert retries == 0
        return
    # every request after a user's first found its connection closed (the close comes 30 ms after
    # each response, the next request right after it): all of them but the first per user resent
    assert retries >= len(req) - 3 - 3  # and up to one per user cut by the stop
    # the resend's timing: TTFT against the server's own record of that request, not 30 ms more
    err = [
        abs(row.ttft_s - (rec["requests"][row.request_id]["sent"][0] - rec["requests"][row.request_id]["received"]))
        for row in req[req.retried].itertuples()
    ]
    assert np.median(err) < _CLOSE_S / 3, np.median(err)

"""The one geventhttpclient access: lines arrive one at a time, each when the server sent it.

Runs in a subprocess (gevent monkey-patches; pytest's process must stay clean). If an upgrade made
reads batch several SSE events again, the gaps would collapse to ~0 and this fails.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap

from tests.loadgen.conftest import ROOT, fake_server

_SCRIPT = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import json, sys, time
    from satscope.loadgen._raw_stream import RawConnection
    conn = RawConnection(sys.argv[1], 5.0, 5.0)
    out = []
    for rid in ("a", "b"):  # the second request reuses the kept-alive connection
        body = json.dumps({"prompt": "x", "max_tokens": 6, "stream": True}).encode()
        resp = conn.post("/v1/completions", body, {"Content-Type": "application/json", "X-Request-Id": rid})
        times = []
        while line := conn.read_line(resp):
            t = time.perf_counter()
            if b'"text"' in line:
                times.append(t)
        out.append({"id": rid, "status": resp.status_code, "times": times})
    print(json.dumps(out))
""")


def test_lines_are_read_one_at_a_time_when_sent() -> None:
    with fake_server(ttft=0.02, itl=0.015) as server:
        res = subprocess.run(
            [sys.executable, "-c", _SCRIPT, server.url], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0, res.stderr
        record = server.records()["requests"]
    for got in json.loads(res.stdout):
        sent = record[got["id"]]["sent"]
        assert got["status"] == 200 and len(got["times"]) == len(sent) == 6
        gaps = sorted(b - a for a, b in itertools.pairwise(got["times"]))
        # batched reads would make most gaps ~0; a busy shared machine may delay one read a little
        assert gaps[len(gaps) // 2] > 0.010 and sum(g < 0.002 for g in gaps) <= 1, gaps
        errors = sorted(abs(g - s) for g, s in zip(got["times"], sent, strict=True))
        assert errors[len(errors) // 2] < 0.003, errors


_NO_YIELD = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import json, sys, time
    import gevent
    from satscope.loadgen._raw_stream import RawConnection, resolve_target
    resolve_target(sys.argv[1])
    conn = RawConnection(sys.argv[1], 5.0, 5.0)
    conn.open()  # connected now: the first post sends on this pooled socket
    out = []
    for rid in ("a", "b"):
        def hog():  # runs only if the post hands the loop over before its send
            end = time.perf_counter() + 0.08
            while time.perf_counter() < end:
                pass
        gevent.spawn(hog)
        body = json.dumps({"prompt": "x", "max_tokens": 2, "stream": True}).encode()
        stamp = time.perf_counter()
        resp = conn.post("/v1/completions", body, {"Content-Type": "application/json", "X-Request-Id": rid})
        while conn.read_line(resp):
            pass
        out.append({"id": rid, "stamp": stamp})
    print(json.dumps(out))
""")


def test_nothing_runs_between_a_requests_clock_and_its_send() -> None:
    """The request's clock starts right before its send: a greenlet waiting to run (here one that
    then holds the loop 80 ms) must not run in between, on a pre-opened socket and a reused one.
    The server's kernel receive time of each request tells when it was really sent."""
    with fake_server(ttft=0.01, itl=0.005, args=("--rx-timestamps",)) as server:
        res = subprocess.run(
            [sys.executable, "-c", _NO_YIELD, server.url], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert res.returncode == 0, res.stderr
        record = server.records()["requests"]
    for got in json.loads(res.stdout):
        rec = record[got["id"]]
        assert got["stamp"] <= rec["kernel_received"] <= rec["received"]
        # sent within 20 ms of the stamp (a yield would let the hog hold it 80 ms), one clock, one host
        assert rec["kernel_received"] - got["stamp"] < 0.02, (got, rec["kernel_received"])


_LIVENESS = textwrap.dedent("""
    from gevent import monkey; monkey.patch_all()
    import json, resource, socket
    from satscope.loadgen._raw_stream import _alive_now
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 1400), hard), hard))
    ballast = [socket.socket() for _ in range(1100)]  # the next descriptors are past select()'s 1024
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    idle = _alive_now(client)
    peer.sendall(b"stray")
    stray = _alive_now(client)
    client.recv(16)
    peer.close()
    closed = _alive_now(client)
    print(json.dumps({"fd": client.fileno(), "idle": idle, "stray": stray, "closed": closed}))
""")


def test_an_idle_socket_is_reused_and_a_closed_one_is_not_past_1024_descriptors() -> None:
    """The pooled socket's check (polled, never yielding): an idle kept-alive socket is alive; one
    with stray bytes or closed by the server is not, also past select()'s 1024 descriptors."""
    res = subprocess.run([sys.executable, "-c", _LIVENESS], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["fd"] > 1024 and (got["idle"], got["stray"], got["closed"]) == (True, False, False), got

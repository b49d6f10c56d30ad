"""A stand-in for llama.cpp's `llama-server`, for tests of external servers (no llama.cpp here).

What satscope reads from a real llama-server, in its shapes: ``/v1/models`` with each model's
``meta`` (``n_params``, ``size`` in bytes, ...), OpenAI streaming completions (content chunks, a
final chunk with ``usage``, ``[DONE]``), and Prometheus ``llamacpp:*`` metrics, here on a second
port to stand for a server whose ``/metrics`` is not at the API's address (``--metrics-url``).
Token counters grow with what was served. Run: ``python -m tests.cli.llamacpp_like --port P
--metrics-port M``.
"""

from __future__ import annotations

import argparse
import http.server
import json
import threading
import time

from tests.helpers import JsonHandler

__all__ = ["META", "main"]

META = {
    "vocab_type": 2,
    "n_vocab": 32000,
    "n_ctx_train": 4096,
    "n_embd": 2048,
    "n_params": 1_100_048_384,
    "size": 2_200_096_768,
}
_counts = {"prompt": 0, "predicted": 0, "processing": 0}
_lock = threading.Lock()


class _Api(JsonHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            return self.send_json(200, {"status": "ok"})
        if self.path == "/v1/models":
            model = {"id": "tinyllama.gguf", "object": "model", "owned_by": "llamacpp", "meta": META}
            return self.send_json(200, {"object": "list", "data": [model]})
        return self.send_json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        if self.path != "/v1/completions":
            return self.send_json(404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}})
        n = int(req.get("max_tokens") or 8)
        prompt = len(str(req.get("prompt", "")).split())
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        if not req.get("stream"):
            return self.send_json(200, {"choices": [{"index": 0, "text": " t" * n}], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with _lock:
            _counts["processing"] += 1
        try:
            for _ in range(n):
                time.sleep(0.01)
                self._chunk({"choices": [{"index": 0, "text": " t", "finish_reason": None}]})
            self._chunk({"choices": [{"index": 0, "text": "", "finish_reason": "length"}], "usage": usage})
            self._send(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        finally:
            with _lock:
                _counts["processing"] -= 1
                _counts["prompt"] += prompt
                _counts["predicted"] += n

    def _chunk(self, obj: dict) -> None:
        self._send(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _send(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class _Metrics(http.server.BaseHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass

    def do_GET(self) -> None:
        with _lock:
            c = dict(_counts)
        text = (
            "# TYPE llamacpp:prompt_tokens_total counter\n"
            f"llamacpp:prompt_tokens_total {c['prompt']}\n"
            "# TYPE llamacpp:tokens_predicted_total counter\n"
            f"llamacpp:tokens_predicted_total {c['predicted']}\n"
            "# TYPE llamacpp:requests_processing gauge\n"
            f"llamacpp:requests_processing {c['processing']}\n"
            "# TYPE llamacpp:requests_deferred gauge\n"
            "llamacpp:requests_deferred 0\n"
        ).encode()
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    args = ap.parse_args(argv)
    metrics = http.server.ThreadingHTTPServer(("127.0.0.1", args.metrics_port), _Metrics)
    threading.Thread(target=metrics.serve_forever, daemon=True).start()
    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), _Api).serve_forever()


if __name__ == "__main__":
    main()

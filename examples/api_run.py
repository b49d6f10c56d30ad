"""Drive a load test from Python and read its verdict: the `satscope.run` API.

    python examples/api_run.py http://127.0.0.1:8000      # any OpenAI-compatible server
    python examples/api_run.py --serve                    # the bundled server (satscope[server])

Steps 1 → 8 users over 60 s, then prints the verdict and the throughput at the saturation point;
the run directory (report.html, summary.json, the Parquet records) stays under runs/.
"""

from __future__ import annotations

import sys

import satscope


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 2
    where = {"serve": True} if argv[0] == "--serve" else {"target": argv[0]}
    try:
        result = satscope.run(**where, shape="step", start_load=1, users=8, steps=4, duration=60, output_len=128)
    except satscope.SatscopeError as exc:  # bad input: the CLI's one-line message
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.summary is None:
        print(f"no summary (exit {result.exit_code}); the run directory is {result.run_dir}", file=sys.stderr)
        return result.exit_code or 1
    sat = result.summary["saturation"]
    print(result.verdict)
    print(f"saturation point: {sat['offered_load_named']} users, {sat['output_tokens_per_s']:.0f} output tokens/s")
    print(f"report: {result.run_dir / 'report.html'}")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

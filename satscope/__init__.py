"""satscope: load-test an LLM server, find where it saturates and which resource ran out first.

The package holds the typer CLI, the composition root that ties the four subsystems
(``server_under_test``, ``loadgen``, ``probes``, ``reports``) together. Importing it is cheap:
heavy libraries (torch, triton, locust, plotly) are imported inside the commands that use them.
``satscope.run`` and ``satscope.report`` are the Python API (``satscope/api.py``).
"""

__version__ = "0.1.0"

from satscope.api import RunResult, report, run  # stdlib only: importing stays cheap
from satscope.errors import SatscopeError

__all__ = ["RunResult", "SatscopeError", "__version__", "report", "run"]

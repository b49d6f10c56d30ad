"""satscope: load-test an LLM server, find where it saturates and which resource ran out first.

The package holds the typer CLI, the composition root that ties the four subsystems
(``server_under_test``, ``loadgen``, ``probes``, ``reports``) together. Importing it is cheap:
heavy libraries (torch, triton, locust, plotly) are imported inside the commands that use them.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

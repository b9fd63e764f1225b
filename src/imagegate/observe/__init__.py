"""What a process tells its operator: Prometheus metrics (``metrics.py``)."""

from imagegate.observe.metrics import Metrics

__all__ = ["Metrics"]

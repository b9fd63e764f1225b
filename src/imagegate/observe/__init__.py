"""What a process tells its operator: Prometheus metrics (``metrics.py``) and optional OpenTelemetry
spans (``tracing.py``)."""

from imagegate.observe.metrics import Metrics
from imagegate.observe.tracing import Tracing

__all__ = ["Metrics", "Tracing"]

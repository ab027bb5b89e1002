"""The service's own Prometheus metrics, exported on /metrics next to BentoML's HTTP metrics."""

from prometheus_client import Gauge

# 1 for the model a worker serves. source: bento, gcs, or fallback (Cloud Storage failed, bento model served).
MODEL_INFO = Gauge(
    "penguin_model_info",
    "The model this service serves",
    ["version", "source"],
    multiprocess_mode="livemax",
)

"""One small HTTP endpoint for a process without a gRPC server (``offerbandit learn``): Prometheus
``/metrics`` and a JSON ``/healthz`` (200 when healthy, 503 otherwise), in a daemon thread."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from offerbandit.checks import check_scalar
from service.metrics import Metrics, MetricsHTTPServer

__all__ = ["Health", "serve_metrics_and_health"]

#: ``health()`` answers (healthy, what to show): the JSON body of ``/healthz``.
Health = Callable[[], tuple[bool, dict[str, object]]]
_PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def serve_metrics_and_health(metrics: Metrics, health: Health, host: str, port: int) -> MetricsHTTPServer:
    """Serve ``/metrics`` and ``/healthz`` on ``host:port`` (0: a free port) until ``stop()``."""
    check_scalar(port, "port", int, low=0, high=65535)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server interface
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, _PROMETHEUS_TEXT, metrics.render())
            elif path == "/healthz":
                healthy, body = health()
                self._send(200 if healthy else 503, "application/json",
                           json.dumps({"healthy": healthy, **body}, sort_keys=True).encode())
            else:
                self._send(404, "text/plain", b"not found: /metrics or /healthz\n")

        def _send(self, status: int, kind: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet: scraped every few seconds
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-health-http", daemon=True)
    thread.start()
    return MetricsHTTPServer(host=host, port=httpd.server_address[1], _httpd=httpd, _thread=thread)

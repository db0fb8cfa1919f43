"""``offerbandit learn``: the single learner of a decision log, until SIGTERM/SIGINT."""
from __future__ import annotations

import os
import signal
import threading
from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, configure_logging, fail
from offerbandit.errors import OfferBanditError


def learn(
    log_url: LogUrl = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: ConfigFile = None,
    metrics_port: Annotated[Optional[int], typer.Option(
        "--metrics-port", help="Serve Prometheus /metrics and a JSON /healthz (lag, lock, registry) on this port.")]
    = None,
    metrics_host: Annotated[str, typer.Option(
        "--metrics-host", help="Interface of the metrics endpoint (unauthenticated; loopback by default).")]
    = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "WARNING",
) -> None:
    """Learn every final event of the log exactly once and publish checkpoints (until SIGTERM/SIGINT, exit 0)."""
    from service.config import load_config
    from service.datadir import PRIVATE_UMASK
    from service.gc_pauses import GcPauseWatch
    from service.learn_process import LearnerProcess
    from service.server import freeze_startup_heap
    from service.roles import masked, with_log_url

    os.umask(PRIVATE_UMASK)  # the model cache and MLflow's local store are private
    configure_logging(log_level)
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        fail(f"--metrics-port must be in 0..65535, got {metrics_port}")
    process = None
    try:
        cfg = with_log_url(load_config(config), log_url)
        process = LearnerProcess(cfg, data_dir, metrics_port=metrics_port, metrics_host=metrics_host)
        process.start()
    except (OfferBanditError, OSError) as exc:
        if process is not None:
            process.stop()
        message = str(exc) if isinstance(exc, OfferBanditError) else f"{exc.strerror or exc}"
        fail(masked(message))
    freeze_startup_heap()  # this process is the learner: its start-up heap lives as long as it does
    pauses = GcPauseWatch(process.metrics.observe_gc_pause).install()
    done = threading.Event()

    def on_signal(signum, frame):  # noqa: ANN001
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"learning from {process.location}", flush=True)
    if process.metrics_http is not None:
        shown = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
        print(f"metrics on http://{shown}:{process.metrics_http.port}/metrics", flush=True)
    while not done.wait(0.5):
        if process.lost.is_set():
            process.stop()
            fail(f"lost the learner lock on {process.location}; stopped (restart to resume)", code=1)
    process.stop()
    pauses.uninstall()
    print("stopped: log flushed", flush=True)

"""``offerbandit serve``: the gRPC decision server until SIGTERM/SIGINT."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from offerbandit.cli.options import DEFAULT_DATA_DIR, ConfigFile, DataDir, LogUrl, configure_logging, fail
from offerbandit.errors import OfferBanditError

def serve(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.")] = 50051,
    config: ConfigFile = None,
    log_url: LogUrl = None,
    tls_cert: Annotated[Optional[Path], typer.Option("--tls-cert", help="PEM certificate: serve over TLS only.")] = None,
    tls_key: Annotated[Optional[Path], typer.Option("--tls-key", help="PEM private key for --tls-cert.")] = None,
    tls_client_ca: Annotated[Optional[Path], typer.Option(
        "--tls-client-ca", help="PEM CA bundle: require client certificates it signed (mutual TLS).")] = None,
    auth_token_file: Annotated[Optional[Path], typer.Option(
        "--auth-token-file",
        help="Require 'authorization: Bearer <token>'; one token a line, each optionally followed by its "
             "scopes (decide, reward, admin; comma-separated).")] = None,
    public_reflection: Annotated[bool, typer.Option(
        "--public-reflection", help="Serve gRPC reflection without a token (health is always open).")] = False,
    reuse_port: Annotated[bool, typer.Option(
        "--reuse-port", help="Let several serve processes listen on the same --port (SO_REUSEPORT; the kernel "
                             "spreads new connections over them). Use with a shared --log-url.")] = False,
    metrics_port: Annotated[Optional[int], typer.Option(
        "--metrics-port", help="Serve Prometheus metrics at http://METRICS_HOST:PORT/metrics.")] = None,
    metrics_host: Annotated[str, typer.Option(
        "--metrics-host", help="Interface of the metrics endpoint (unauthenticated; loopback by default).")]
    = "127.0.0.1",
    log_level: Annotated[str, typer.Option(help="Python log level.")] = "WARNING",
) -> None:
    """Run the gRPC decision server until SIGTERM/SIGINT (graceful: drain, flush, exit 0)."""
    from service.config import load_config
    from service.datadir import PRIVATE_UMASK
    from service.gc_pauses import GcPauseWatch
    from service.roles import masked, with_log_url
    from service.server import DecisionServer, TlsFiles, freeze_startup_heap, read_tokens, shorten_gil_turns

    os.umask(PRIVATE_UMASK)  # before anything is created: the log, secret.key, MLflow's store
    configure_logging(log_level)
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    if tls_client_ca is not None and tls_cert is None:
        fail("--tls-client-ca needs --tls-cert and --tls-key")
    if not 0 <= port <= 65535:
        fail(f"--port must be in 0..65535, got {port}")
    try:
        cfg = with_log_url(load_config(config), log_url)
        tokens = read_tokens(auth_token_file) if auth_token_file else None
        tls = TlsFiles(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
        server = DecisionServer(cfg, data_dir, host=host, port=port, tls=tls, auth_token=tokens,
                                metrics_port=metrics_port, metrics_host=metrics_host,
                                public_reflection=public_reflection, reuse_port=reuse_port)
        server.start()
    except OfferBanditError as exc:
        fail(masked(str(exc)))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": "))
    done = threading.Event()

    def on_signal(signum, frame):  # noqa: ANN001
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    freeze_startup_heap()  # this process is the server: its start-up heap lives as long as it does
    shorten_gil_turns()
    pauses = GcPauseWatch(server.metrics.observe_gc_pause).install()
    shown_host = f"[{host}]" if ":" in host else host
    print(f"listening on {shown_host}:{server.port}", flush=True)
    if metrics_port is not None and server.metrics_http is not None:
        shown_metrics = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
        print(f"metrics on http://{shown_metrics}:{server.metrics_http.port}/metrics", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    pauses.uninstall()
    print("stopped: log flushed", flush=True)

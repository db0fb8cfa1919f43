"""Screenshot MLflow's compare view of a demo's versions (docs/mlflow_compare.png) from a real run.

    .venv/bin/offerbandit demo --data-dir /tmp/demo
    .venv/bin/python scripts/screenshot_mlflow.py --data-dir /tmp/demo [--out docs/mlflow_compare.png]

Starts ``mlflow ui`` on the demo's store (a free loopback port), opens the compare view of the runs that
published the versions which carry a lift (``lift`` metric) in headless Chromium (``apt-get install chromium``
on Debian; ``--browser`` names another binary) and writes the screenshot. Nothing is drawn by hand: what
is in the picture is what the store holds.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _version_runs(tracking_uri: str, model: str) -> tuple[str, list[str]]:
    """The experiment id and the publish runs of (at most) the four versions with the most treated decisions
    among those that carry a lift, oldest version first."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    versions = sorted(client.search_model_versions(f"name = '{model}'"), key=lambda v: int(v.version))
    runs = [client.get_run(v.run_id) for v in versions if v.run_id]
    with_lift = [r for r in runs if "lift" in r.data.metrics]
    if not with_lift:
        sys.exit(f"no version of {model} carries a lift metric in {tracking_uri}: run the demo first")
    by_size = sorted(with_lift, key=lambda r: r.data.metrics.get("n_treated_decisions", 0.0))
    largest = {r.info.run_id for r in by_size[-4:]}
    shown = [r for r in with_lift if r.info.run_id in largest]
    return shown[0].info.experiment_id, [r.info.run_id for r in shown]


def _wait_until_up(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"mlflow ui did not answer {url} within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the demo's data directory (its mlflow.db)")
    parser.add_argument("--out", type=Path, default=Path("docs/mlflow_compare.png"))
    parser.add_argument("--model", default="offerbandit-default")
    parser.add_argument("--browser", default=shutil.which("chromium") or shutil.which("chromium-browser") or "")
    parser.add_argument("--size", default="1900,2000", help="window width,height in pixels")
    args = parser.parse_args()
    if not args.browser:
        sys.exit("no Chromium found: apt-get install -y chromium (or give --browser)")
    store = args.data_dir.resolve() / "mlflow.db"
    if not store.is_file():
        sys.exit(f"no MLflow store at {store}")
    tracking_uri = f"sqlite:///{store}"
    experiment, runs = _version_runs(tracking_uri, args.model)
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    ui = subprocess.Popen([str(mlflow), "ui", "--backend-store-uri", tracking_uri, "--host", "127.0.0.1",
                           "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/health", 120)
        query = urllib.parse.urlencode({"runs": json.dumps(runs), "experiments": json.dumps([experiment])})
        url = f"http://127.0.0.1:{port}/#/compare-runs?{query}"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([args.browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={args.size}", "--virtual-time-budget=30000",
                        f"--screenshot={args.out.resolve()}", url],
                       check=True, timeout=180, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"wrote {args.out} (compare view of {len(runs)} version runs: {url})")
    finally:
        ui.terminate()
        ui.wait(30)


if __name__ == "__main__":
    main()

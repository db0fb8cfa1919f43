"""Importing the service's configuration stays cheap: the CLI's light commands load neither gRPC nor VW."""
from __future__ import annotations

import subprocess
import sys


def test_importing_the_config_does_not_load_the_server():
    code = "import sys, service.config; print('grpc' in sys.modules, 'vowpalwabbit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]

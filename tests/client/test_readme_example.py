"""The README's Python client example runs as printed against a real TLS server with a token."""
from __future__ import annotations

import re
from pathlib import Path

from service.server import TlsFiles
from tests.service.test_service_security import _self_signed

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_example_runs(start_server, tmp_path, monkeypatch, capsys):
    section = README.read_text().split("### From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12
    cert, key, cert_pem = _self_signed(tmp_path)
    (tmp_path / "ca.pem").write_bytes(cert_pem)
    served = start_server("[campaigns.default]\n[campaigns.sms_winback]\nformats = [\"sms\"]\n", tls=TlsFiles(cert, key),
                          auth_token="s3cret")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("127.0.0.1:50051", served.address), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] in {"coffee_2off", "gym_trial"}
    assert out[1].startswith("StatusCode.NOT_FOUND")

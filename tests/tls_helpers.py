"""A self-signed certificate for the TLS tests, made by the ``openssl`` command."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest


def self_signed(folder: Path, common_name: str) -> tuple[Path, Path]:
    """(certificate, key) in ``folder``: self-signed for ``common_name``, valid one day (an IP
    address also goes in the subjectAltName). Skips the test when openssl is missing."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    crt, key = folder / "cert.pem", folder / "key.pem"
    try:
        ipaddress.ip_address(common_name)
        extra = ["-addext", f"subjectAltName=IP:{common_name}"]
    except ValueError:
        extra = []
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)),
            *("-out", str(crt), "-days", "1", "-subj", f"/CN={common_name}", *extra),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return crt, key

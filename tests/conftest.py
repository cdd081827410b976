"""Suite-wide test settings.

Hypothesis runs without its per-example deadline and without the too-slow health check: the
machines that run this suite are shared, and a test must never fail because the machine is
busy. Explicit ``@settings(...)`` on a test still override ``max_examples`` and the like.
"""

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from s3_server import S3Server, S3Unavailable, shared_server

settings.register_profile(
    "package-storage",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("package-storage")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS, tests/s3_server.py) shared by the session; tests take a
    fresh prefix each (``s3_server.location()``). Skips loudly when it cannot start."""
    try:
        server = shared_server()
    except S3Unavailable as exc:
        pytest.skip(f"S3 tests skipped: SeaweedFS cannot start: {exc}")
    yield server

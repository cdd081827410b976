"""Suite-wide test settings.

Hypothesis runs without its per-example deadline and without the too-slow health check: the
machines that run this suite are shared, and a test must never fail because the machine is
busy. Explicit ``@settings(...)`` on a test still override ``max_examples`` and the like.
"""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "package-storage",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("package-storage")

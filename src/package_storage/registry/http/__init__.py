"""HTTP of the read API: the raw ASGI app, static file answers, error texts and statuses,
Prometheus metrics and the server.

May import: the rest of ``registry``, ``packages``, ``errors``, ``logs``. Must never import
``store``, ``serving``, ``transfer`` or ``cli``.
"""

"""The EPR read side: what Kibana and elastic-package talk to.

Search and filtering, the immutable served index, folder and zip sources with their watcher,
the settings of ``serve``, the proxy mode (``proxy``, ``proxy_client``: an upstream registry's
packages beside the local ones), and ``http/`` (the raw ASGI read app, static files, metrics, the
Uvicorn/Granian server).

May import: ``packages``, ``errors``, ``logs``.
Must never import: ``store`` (the read side knows nothing of stages or revisions; ``serving``
joins the two), ``transfer`` or ``cli``.
"""

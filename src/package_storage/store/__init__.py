"""The staged store: stages and their rules, the service, the store directory, the keyring.

``service.py`` is the only home of the business rules (publish, promote, remove, tag,
rollback); ``storage/`` holds the catalog and blob-store protocols and their backends.

May import: ``packages``, ``errors``, ``logs``.
Must never import: ``registry`` or its ``http`` (the store does not know how it is served),
``serving``, ``transfer`` or ``cli``.
"""

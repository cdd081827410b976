"""Storage backends of the store: protocols (``base``), the catalog schema, SQLite, local folder.

May import: ``store.stages``, ``packages``, ``errors``. Must never import ``store.service``
(the service uses storage, not the other way round) nor anything outside ``store``'s layer rules.
"""

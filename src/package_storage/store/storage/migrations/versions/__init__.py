"""Alembic revisions of the catalog schema, oldest first (``rNNNN_<what>.py``)."""

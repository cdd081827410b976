"""The store's OpenPGP keys in the catalog (``store_keys``): the signing key (passphrase-protected,
sealed with the passphrase, or a key file's path: never in clear) and the trusted keys, so that
every writer and replica of a store sees the same ones. Stores with key files in ``DIR/keys``
keep them there (still read); nothing is moved."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "store_keys",
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("fingerprint", sa.String(40), primary_key=True),
        sa.Column("public", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_keys")

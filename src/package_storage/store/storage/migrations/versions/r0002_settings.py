"""Store settings (key/value), e.g. where the blobs live; ``schema_version`` goes to 4 so that
package-storage from before Alembic refuses the store instead of writing into it."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.execute(sa.text("UPDATE schema_version SET version = 4 WHERE id = 1"))


def downgrade() -> None:
    op.drop_table("settings")
    op.execute(sa.text("UPDATE schema_version SET version = 3 WHERE id = 1"))

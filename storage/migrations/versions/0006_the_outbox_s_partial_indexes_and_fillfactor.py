"""The outbox's partial index and fillfactor: throughput stays flat on PostgreSQL

The index on (sent_at, id) kept an entry for every version of every row, sent or not: each
claim, release and mark added entries that claims then walked over until autovacuum, and
throughput fell by half within minutes (issue 21). A partial index now holds the unsent rows
only (one index: every index is written on each insert and mark, and a nearly full disk must
still take the messages that say so); on PostgreSQL, pages keep room for HOT updates
(fillfactor 70: claims and releases then add no index entry) and autovacuum comes at 2%.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 02:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UNSENT = sa.text("sent_at IS NULL")
STORAGE = (
    "fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02"
)
STORAGE_NAMES = "fillfactor, autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor"


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unsent", "outbox", ["id"], postgresql_where=UNSENT, sqlite_where=UNSENT
    )
    op.drop_index("ix_outbox_pending", table_name="outbox")
    if op.get_bind().dialect.name == "postgresql":
        # Pages filled from now on keep room; existing ones as they are rewritten.
        op.execute(f"ALTER TABLE outbox SET ({STORAGE})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE outbox RESET ({STORAGE_NAMES})")
    op.create_index("ix_outbox_pending", "outbox", ["sent_at", "id"])
    op.drop_index("ix_outbox_unsent", table_name="outbox")

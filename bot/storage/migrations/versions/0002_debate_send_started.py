"""debates.send_started_at: a send may have reached Discord

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("debates") as batch:
        batch.add_column(sa.Column("send_started_at", bot.storage.tables.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("debates") as batch:
        batch.drop_column("send_started_at")

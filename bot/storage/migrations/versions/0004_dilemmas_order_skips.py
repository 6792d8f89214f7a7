"""several dilemmas per prompt, varied option order, per-prompt skips and sensitive prompts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bot.storage.tables

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (nullable or with a default) works on SQLite and PostgreSQL alike.
    op.add_column("guilds", sa.Column("sensitive_prompts", sa.Boolean(), server_default="0", nullable=False))
    op.add_column("debates", sa.Column("dilemma_id", sa.String(length=64), nullable=True))
    op.add_column("polls", sa.Column("option_order", sa.String(length=64), nullable=True))
    op.create_index("ix_debates_guild_prompt", "debates", ["guild_id", "prompt_key"], unique=False)
    op.create_table(
        "prompt_skips",
        sa.Column("guild_id", sa.BigInteger(), nullable=False),
        sa.Column("prompt_key", sa.String(length=140), nullable=False),
        sa.Column("skipped_at", bot.storage.tables.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guilds.id"], name=op.f("fk_prompt_skips_guild_id_guilds"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("guild_id", "prompt_key", name=op.f("pk_prompt_skips")),
    )


def downgrade() -> None:
    op.drop_table("prompt_skips")
    op.drop_index("ix_debates_guild_prompt", table_name="debates")
    with op.batch_alter_table("polls") as batch:
        batch.drop_column("option_order")
    with op.batch_alter_table("debates") as batch:
        batch.drop_column("dilemma_id")
    with op.batch_alter_table("guilds") as batch:
        batch.drop_column("sensitive_prompts")

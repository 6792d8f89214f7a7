"""The schema, in SQLAlchemy Core. Alembic migrations in ``migrations/`` are the source of truth for
existing databases; this module describes the current head and is what queries are written against.

Discord snowflakes are stored as 64-bit integers; every timestamp is stored as UTC (see ``UTCDateTime``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


guilds = Table(
    "guilds",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False, server_default=""),
    Column("joined_at", UTCDateTime, nullable=False),
    # Set when the bot is removed; the server's data is purged `retention_days` later.
    Column("removed_at", UTCDateTime, nullable=True),
    Column("builtin_pack_enabled", Boolean, nullable=False, server_default="1"),
    Column("show_live_counts", Boolean, nullable=False, server_default="0"),
    Column("vote_role_id", BigInteger, nullable=True),
    Column("vote_min_days", Integer, nullable=False, server_default="0"),
    # Prompts marked `sensitive: true` in a pack are left out of the rotation unless this is on.
    Column("sensitive_prompts", Boolean, nullable=False, server_default="0"),
)

schedules = Table(
    "schedules",
    metadata,
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", BigInteger, nullable=False),
    Column("post_time", String(5), nullable=False),  # local "HH:MM"
    Column("timezone", String(64), nullable=False),  # IANA name
    Column("weekdays", SmallInteger, nullable=False),  # bit 0 = Monday ... bit 6 = Sunday
    Column("ping_role_id", BigInteger, nullable=True),
    Column("thread", Boolean, nullable=False, server_default="1"),
    Column("pin", Boolean, nullable=False, server_default="0"),
    Column("poll_hours", Integer, nullable=False, server_default="24"),
    Column("poll_style", String(10), nullable=False, server_default="buttons"),
    Column("review_channel_id", BigInteger, nullable=True),
    Column("catch_up_minutes", Integer, nullable=False, server_default="180"),
    Column("paused", Boolean, nullable=False, server_default="0"),
    Column("blocked_reason", Text, nullable=True),
    Column("last_post_at", UTCDateTime, nullable=True),
    Column("last_skip_note", Text, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("weekdays > 0 AND weekdays < 128", name="weekdays_range"),
    CheckConstraint("poll_style IN ('buttons', 'native')", name="poll_style_known"),
    CheckConstraint("poll_hours >= 1 AND poll_hours <= 768", name="poll_hours_range"),
)

packs = Table(
    "packs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("slug", String(64), nullable=False),
    Column("name", String(100), nullable=False),
    Column("source", Text, nullable=False),  # the validated YAML, verbatim
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("prompt_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("guild_id", "slug"),
)

suggestions = Table(
    "suggestions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    # The suggesting member while the suggestion is pending; NULL once a moderator decides it
    # (packs.decide). /privacy forget-me deletes the member's rows (privacy.forget_member).
    Column("user_id", BigInteger, nullable=True),
    Column("body", Text, nullable=False),  # JSON: the suggested prompt
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("review_channel_id", BigInteger, nullable=True),
    Column("review_message_id", BigInteger, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status_known"),
)

rotations = Table(
    "rotations",
    metadata,
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True),
    Column("cycle", Integer, nullable=False, server_default="0"),
    Column("used", Text, nullable=False, server_default="[]"),  # JSON list of prompt keys used this cycle
)

debates = Table(
    "debates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(10), nullable=False),  # scheduled | planned | manual
    # The scheduled local day ("YYYY-MM-DD"); unique per server so a day can never be posted twice.
    Column("slot_date", String(10), nullable=True),
    Column("due_at", UTCDateTime, nullable=False),
    Column("prompt_key", String(140), nullable=False),  # "<pack slug>/<prompt id>"
    # The prompt's dilemma this debate used (NULL for debates posted before prompts had several).
    Column("dilemma_id", String(64), nullable=True),
    Column("paragraph", SmallInteger, nullable=False),
    Column("excerpt", Text, nullable=False),
    Column("question", Text, nullable=False),
    Column("theme", String(40), nullable=False),
    Column("channel_id", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("thread_id", BigInteger, nullable=True),
    Column("event_id", BigInteger, nullable=True),
    Column("nonce", String(25), nullable=False, unique=True),
    Column("status", String(10), nullable=False, server_default="pending"),
    Column("error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("posted_at", UTCDateTime, nullable=True),
    # Set (and committed) before the first send: a debate still pending with it set may already be on
    # Discord, so a retry looks for that post before sending again (the nonce dedupes for minutes only).
    Column("send_started_at", UTCDateTime, nullable=True),
    UniqueConstraint("guild_id", "kind", "slot_date", name="uq_debates_one_per_slot"),
    CheckConstraint("kind IN ('scheduled', 'planned', 'manual')", name="kind_known"),
    CheckConstraint("status IN ('pending', 'posted', 'failed', 'skipped')", name="status_known"),
)
Index("ix_debates_guild_posted", debates.c.guild_id, debates.c.posted_at)
Index("ix_debates_guild_prompt", debates.c.guild_id, debates.c.prompt_key)

# Prompts a server's moderators took out of its rotation, by key ("<pack slug>/<prompt id>").
prompt_skips = Table(
    "prompt_skips",
    metadata,
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True),
    Column("prompt_key", String(140), primary_key=True),
    Column("skipped_at", UTCDateTime, nullable=False),
)

polls = Table(
    "polls",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("debate_id", Integer, ForeignKey("debates.id", ondelete="SET NULL"), nullable=True),
    Column("channel_id", BigInteger, nullable=False),
    Column("message_id", BigInteger, nullable=True),
    Column("question", Text, nullable=False),
    Column("theme", String(40), nullable=True),
    Column("prompt_key", String(140), nullable=True),
    Column("style", String(10), nullable=False, server_default="buttons"),
    Column("status", String(10), nullable=False, server_default="open"),
    Column("live_counts", Boolean, nullable=False, server_default="0"),
    # The order the options are shown in while the poll is open: option idx values, comma-separated
    # (e.g. "2,1,0"). NULL: in idx order. Votes always store the option's idx, never where it was shown.
    Column("option_order", String(64), nullable=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closes_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    # Sufficient statistics of the final votes, kept when member rows are deleted (forget-me).
    Column("final_voters", Integer, nullable=True),
    Column("final_total", Float, nullable=True),
    Column("final_total_sq", Float, nullable=True),
    # Why the final counts are not what the poll itself showed (e.g. a native poll the bot could no longer
    # read closed from the votes it had stored); shown with the result.
    Column("close_note", Text, nullable=True),
    CheckConstraint("style IN ('buttons', 'native')", name="style_known"),
    CheckConstraint("status IN ('open', 'closed', 'deleted')", name="status_known"),
)
Index("ix_polls_guild_status", polls.c.guild_id, polls.c.status)
Index("ix_polls_message", polls.c.message_id)

poll_options = Table(
    "poll_options",
    metadata,
    Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True),
    Column("idx", SmallInteger, primary_key=True),
    Column("label", String(100), nullable=False),
    Column("position", Float, nullable=False),
    Column("final_count", Integer, nullable=True),
    CheckConstraint("position >= -1.0 AND position <= 1.0", name="position_range"),
    CheckConstraint("idx >= 0 AND idx < 25", name="idx_range"),
)

votes = Table(
    "votes",
    metadata,
    Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("option_idx", SmallInteger, nullable=False),
    Column("voted_at", UTCDateTime, nullable=False),
)
Index("ix_votes_user", votes.c.user_id)

vote_events = Table(
    "vote_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("poll_id", Integer, ForeignKey("polls.id", ondelete="CASCADE"), nullable=False),
    Column("guild_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),  # cast | change | withdraw
    Column("option_idx", SmallInteger, nullable=True),
    Column("at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('cast', 'change', 'withdraw')", name="kind_known"),
)
Index("ix_vote_events_poll_user", vote_events.c.poll_id, vote_events.c.user_id)
Index("ix_vote_events_user", vote_events.c.user_id)

# Per-server weekly aggregates of closed polls, maintained at close, so long series never scan votes.
# theme = "" is the all-themes row.
leaning_weekly = Table(
    "leaning_weekly",
    metadata,
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True),
    Column("theme", String(40), primary_key=True),
    Column("week_start", Date, primary_key=True),
    Column("polls", Integer, nullable=False),
    Column("voters", Integer, nullable=False),
    Column("total", Float, nullable=False),
    Column("total_sq", Float, nullable=False),
)

# The durable job queue: one row per pending job; deleted only after its handler succeeds.
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(160), nullable=False, unique=True),
    Column("guild_id", BigInteger, nullable=True),
    Column("due_at", UTCDateTime, nullable=False),
    Column("payload", Text, nullable=False, server_default="{}"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # Which process runs the job, until when (wall-clock UTC): two processes never run one job at once.
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
)
Index("ix_jobs_due", jobs.c.due_at)

# Facts about the deployment itself, one row per key: "application_id" is the Discord application
# whose data this database holds, stored at first start (a start with another application's token
# refuses to run rather than reconcile production data against a staging bot's servers).
bot_state = Table(
    "bot_state",
    metadata,
    Column("key", String(50), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

USER_DATA_TABLES = ("votes", "vote_events", "suggestions", "web_sessions", "web_logins", "web_audit")

# -- the website (bot/web) ----------------------------------------------------------------------------

# One row per logged-in browser. The cookie holds a random secret; only its SHA-256 is stored, so a
# copy of the database logs nobody in. The Discord access token stays server-side (never in a cookie)
# so the member's Manage Server can be re-checked; "log out everywhere" deletes every row of a user.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # sha256 hex of the cookie's secret
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("user_name", String(100), nullable=False, server_default=""),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("access_token", Text, nullable=False),
    Column("refresh_token", Text, nullable=True),
    Column("token_expires_at", UTCDateTime, nullable=False),
    Column("guilds", Text, nullable=False, server_default="[]"),  # /users/@me/guilds, trimmed, as JSON
    Column("guilds_at", UTCDateTime, nullable=False),
)

# A login in flight: the OAuth2 `state` (hashed), the PKCE verifier and the browser it belongs to.
# The row is deleted when the callback uses it, so a replayed `state` finds nothing.
web_logins = Table(
    "web_logins",
    metadata,
    Column("state", String(64), primary_key=True),  # sha256 hex
    Column("browser", String(64), nullable=False),  # sha256 hex of the login cookie
    Column("verifier", String(128), nullable=False),
    Column("next_path", String(200), nullable=False, server_default="/"),
    Column("created_at", UTCDateTime, nullable=False),
)

# What moderators changed on the website, kept 90 days (bot.storage.web.purge_audit).
web_audit = Table(
    "web_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", BigInteger, nullable=True),  # NULL once the moderator used forget-me
    Column("user_name", String(100), nullable=False, server_default=""),
    Column("action", String(64), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("at", UTCDateTime, nullable=False),
)
Index("ix_web_audit_guild_at", web_audit.c.guild_id, web_audit.c.at)
Index("ix_web_audit_at", web_audit.c.at)

# A server's public page: off unless a moderator publishes it.
web_public = Table(
    "web_public",
    metadata,
    Column("guild_id", BigInteger, ForeignKey("guilds.id", ondelete="CASCADE"), primary_key=True),
    Column("published", Boolean, nullable=False, server_default="0"),
    Column("changed_at", UTCDateTime, nullable=False),
)

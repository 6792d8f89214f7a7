"""A local Discord-compatible REST API and gateway for end-to-end tests and ``commonground demo``.

See README.md in this directory.
"""

from ._util import DiscordHTTPError
from .faults import FaultRule, Faults
from .records import ChannelRecord, GuildRecord, Interaction, MemberRecord, RequestRecord, RoleRecord
from .server import Sandbox

__all__ = [
    "ChannelRecord",
    "DiscordHTTPError",
    "FaultRule",
    "Faults",
    "GuildRecord",
    "Interaction",
    "MemberRecord",
    "RequestRecord",
    "RoleRecord",
    "Sandbox",
]

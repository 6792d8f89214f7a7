"""A local Discord-compatible REST API and gateway for end-to-end tests and ``commonground demo``.

See README.md in this directory.
"""

from ._util import DiscordHTTPError
from .conditions import Conditions
from .faults import FaultRule, Faults
from .ratelimits import ROUTE_BUCKETS, Bucket, RateLimits
from .records import ChannelRecord, GuildRecord, Interaction, MemberRecord, RequestRecord, RoleRecord
from .server import Sandbox

__all__ = [
    "ROUTE_BUCKETS",
    "Bucket",
    "ChannelRecord",
    "Conditions",
    "DiscordHTTPError",
    "FaultRule",
    "Faults",
    "GuildRecord",
    "Interaction",
    "MemberRecord",
    "RateLimits",
    "RequestRecord",
    "RoleRecord",
    "Sandbox",
]

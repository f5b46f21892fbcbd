"""The embedded HTTP API for the community website (its OpenAPI document: `GET /api/openapi.json`)."""

from bot.api.app import bound_port, create_app, start_api, stop_api
from bot.api.connections import ServerLimits
from bot.api.deps import ApiDeps, OAuthConfig
from bot.api.membership import CachedMembership, MembershipResolver, StaticMembership

__all__ = [
    "ApiDeps",
    "CachedMembership",
    "MembershipResolver",
    "OAuthConfig",
    "ServerLimits",
    "StaticMembership",
    "bound_port",
    "create_app",
    "start_api",
    "stop_api",
]

"""Who may promote (rule 1)."""

from __future__ import annotations

from dataclasses import dataclass

from services.models import Actor, PermissionTier


@dataclass(frozen=True, slots=True)
class PromoterPolicy:
    promoter_ids: frozenset[int]
    admin_ids: frozenset[int]
    promoter_role_ids: frozenset[int]


def can_promote(actor: Actor, tier: PermissionTier | None, policy: PromoterPolicy) -> bool:
    """A linked member who is listed, holds a promoter role, or has tier admin/root."""
    if not actor.is_member:
        return False
    if actor.discord_user_id in policy.promoter_ids or actor.discord_user_id in policy.admin_ids:
        return True
    if not actor.role_ids.isdisjoint(policy.promoter_role_ids):
        return True
    return tier in (PermissionTier.ADMIN, PermissionTier.ROOT)


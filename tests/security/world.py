"""Two organizations side by side, and everyone who might try to cross between them."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shared.auth import AnonPrincipal, ApiKeyPrincipal, Principal
from shared.db import Connection
from shared.runtime import Runtime
from tests.support import issue_key, make_org, make_user, member, principal


@dataclass
class World:
    org_a: UUID
    org_b: UUID
    owner_a: UUID
    owner_b: UUID
    admin_b: UUID
    agent_b: UUID
    key_b: ApiKeyPrincipal

    def principals(self) -> dict[str, Principal]:
        """Who attacks org A from org B (and from nowhere)."""
        return {
            "agent_b": principal(self.agent_b),
            "admin_b": principal(self.admin_b),
            "api_key_b": self.key_b,
            "anon": AnonPrincipal(),
        }


async def build_world(db: Connection, runtime: Runtime) -> World:
    owner_a = await make_user(db, "owner.a@a.example")
    owner_b = await make_user(db, "owner.b@b.example")
    org_a = await make_org(db, owner_a, "Org A")
    org_b = await make_org(db, owner_b, "Org B")
    admin_b = await member(db, org_b, "admin", "admin.b@b.example")
    agent_b = await member(db, org_b, "agent", "agent.b@b.example")
    _, key_b = await issue_key(runtime, org_b, owner_b, ["read", "write"])
    return World(
        org_a=org_a,
        org_b=org_b,
        owner_a=owner_a,
        owner_b=owner_b,
        admin_b=admin_b,
        agent_b=agent_b,
        key_b=key_b,
    )

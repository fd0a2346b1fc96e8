"""User management: create, change, disable, delete, and what each change revokes.

Disabling, deleting, a new role or a new password revoke every token of the user; a membership
change revokes nothing and is pushed to every instance, whose live sessions apply it at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.auth.login import AuthService
from gateway.auth.passwords import Passwords
from gateway.auth.revoker import Receipt
from gateway.auth.throttle import Outcome
from gateway.bus.control import MEMBERSHIP, Control
from gateway.errors import Forbidden, NotFound, Unprocessable
from gateway.store.users import UserStore
from gateway.types import RevocationReason, User


class AccountService:
    def __init__(
        self, users: UserStore, passwords: Passwords, auth: AuthService, control: Control
    ) -> None:
        self.users = users
        self.passwords = passwords
        self.auth = auth
        self.control = control

    def _memberships_changed(self, user_id: int, network_ids: Iterable[int] | None) -> None:
        self.control.publish(
            MEMBERSHIP,
            user_id=user_id,
            network_ids=None if network_ids is None else sorted(network_ids),
        )

    async def create(
        self, *, name: str, email: str, password: str, role: str, network_ids: Iterable[int] = ()
    ) -> User:
        password_hash = await self.passwords.hash(password)
        return await self.users.create(
            name=name, email=email, password_hash=password_hash, role=role, network_ids=network_ids
        )

    async def ensure_admin(self, email: str, password: str) -> bool:
        """Idempotent: creates the admin only if no user has that email."""
        if await self.users.by_email(email) is not None:
            return False
        password_hash = await self.passwords.hash(password)
        return await self.users.ensure(
            name=email.split("@")[0] or "admin",
            email=email,
            password_hash=password_hash,
            role="admin",
        )

    async def confirm_password(self, user_id: int, password: str | None, address: str) -> None:
        """One's own new password takes the current one: an access token alone (stolen, or
        minted narrow with UpdateCurrentUser) must not become the account. Counted as a login
        attempt, so it is no way around the login throttle."""
        if password is None:
            raise Unprocessable("current_password: needed to change one's own password")
        user = await self.users.get(user_id)
        if user is None:
            raise NotFound("User not found")
        throttle = self.auth.throttle
        ticket = await throttle.admit(user.email.casefold(), address)
        outcome = Outcome.VOID
        try:
            matched = await self.passwords.verify(user.password_hash, password)
            outcome = Outcome.SUCCEEDED if matched else Outcome.FAILED
        finally:
            await throttle.settle(ticket, outcome)
        if not matched:
            raise Forbidden("current_password: does not match")

    async def update(
        self,
        user_id: int,
        *,
        name: str | None = None,
        password: str | None = None,
        role: str | None = None,
        status: str | None = None,
        network_ids: Iterable[int] | None = None,
    ) -> tuple[User, Receipt | None]:
        before = await self.users.get(user_id)
        if before is None:
            raise NotFound("User not found")
        changes: dict[str, Any] = {}
        if name is not None:
            changes["name"] = name
        if role is not None and role != before.role:
            changes["role"] = role
        if status is not None and status != before.status:
            changes["status"] = status
        if password is not None:
            changes["password_hash"] = await self.passwords.hash(password)
        after = await self.users.update(user_id, changes, network_ids)
        if after is None:
            raise NotFound("User not found")
        receipt = None
        reasons = [
            reason
            for key, reason in (
                ("password_hash", RevocationReason.PASSWORD_CHANGED),
                ("role", RevocationReason.ROLE_CHANGED),
                ("status", RevocationReason.USER_DISABLED),
            )
            if key in changes and not (key == "status" and after.active)
        ]
        if reasons:
            receipt = await self.auth.revoke_user(user_id, *reasons)
        if network_ids is not None and set(after.network_ids) != set(before.network_ids):
            self._memberships_changed(user_id, after.network_ids)
        return after, receipt

    async def delete(self, user_id: int) -> Receipt:
        if not await self.users.delete(user_id):
            raise NotFound("User not found")
        self._memberships_changed(user_id, ())
        return await self.auth.revoke_user(user_id, RevocationReason.USER_DELETED)

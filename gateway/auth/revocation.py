"""The in-memory revocation view that every authenticated request and message is checked against.

PostgreSQL holds the truth (table ``revocations``); this view is fed by bus events the moment a
revocation happens anywhere, and reconciled from PostgreSQL periodically and after a bus outage,
so a lost pub/sub message delays a revocation by at most the reconciliation interval.
"""

from __future__ import annotations

import time

from gateway.types import Principal, Revocation


class RevocationView:
    """Dict look-ups only: O(1) per check whatever the number of revocations."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._sessions: dict[str, float] = {}
        self._users: dict[str, tuple[float, float]] = {}
        self._devices: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._tokens) + len(self._sessions) + len(self._users) + len(self._devices)

    def apply(self, revocation: Revocation) -> None:
        subject, expires = revocation.subject, revocation.expires_at
        if revocation.kind == "jti":
            self._tokens[subject] = max(expires, self._tokens.get(subject, 0.0))
        elif revocation.kind == "sid":
            self._sessions[subject] = max(expires, self._sessions.get(subject, 0.0))
        else:
            table = self._users if revocation.kind == "user" else self._devices
            cutoff, old_expires = table.get(subject, (0.0, 0.0))
            table[subject] = (max(cutoff, revocation.revoked_at), max(expires, old_expires))

    def is_revoked(self, principal: Principal) -> bool:
        if principal.jti in self._tokens or principal.sid in self._sessions:
            return True
        if principal.parents and any(parent in self._sessions for parent in principal.parents):
            return True
        if self._users:  # usually empty: no string made per message for the look-up
            user = self._users.get(str(principal.user_id))
            if user is not None and principal.issued_at < user[0]:
                return True
        devices = principal.scope.device_ids
        if devices is not None and self._devices:
            for device_id in devices:
                cut = self._devices.get(device_id)
                if cut is not None and principal.issued_at < cut[0]:
                    return True
        return False

    def prune(self, now: float | None = None) -> None:
        """Forget revocations that nothing valid can match any more."""
        now = time.time() if now is None else now
        for table in (self._tokens, self._sessions):
            for key in [k for k, expires in table.items() if expires < now]:
                del table[key]
        for cut_table in (self._users, self._devices):
            for key in [k for k, (_, expires) in cut_table.items() if expires < now]:
                del cut_table[key]

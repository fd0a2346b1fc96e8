-- Minted token families: tied to the login session they were minted from, with a hard end.
--   parent_id:  the caller's login session (NULL for a login or an administrator's mint)
--   expires_at: no token of the family, rotated or not, lives past it (NULL: it slides with
--               each rotation, as a login's family does)
ALTER TABLE login_sessions
    ADD COLUMN parent_id  uuid REFERENCES login_sessions (id) ON DELETE CASCADE,
    ADD COLUMN expires_at timestamptz;
CREATE INDEX login_sessions_parent_idx ON login_sessions (parent_id);

-- The race re-checks of login, refresh and minting look revocations up by subject.
CREATE INDEX revocations_subject_idx ON revocations (subject, kind);

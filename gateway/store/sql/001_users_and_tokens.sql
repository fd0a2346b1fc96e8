-- Users, refresh families (login sessions) and revocations.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    name          text        NOT NULL,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'client')),
    status        text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- A login session is the family that a chain of rotated refresh tokens belongs to (claim sid).
CREATE TABLE login_sessions (
    id         uuid        PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX login_sessions_user_idx ON login_sessions (user_id);

CREATE TABLE refresh_tokens (
    jti         uuid        PRIMARY KEY,
    session_id  uuid        NOT NULL REFERENCES login_sessions (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    consumed_at timestamptz
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

-- Every revocation, kept until nothing it covers can still be valid (expires_at).
--   jti:    one token
--   sid:    a login session: its refresh family and every access token minted from it
--   user:   every token of the user issued before revoked_at (logout-all, disable, delete, ...)
--   device: every token scoped to that device id, issued before revoked_at
CREATE TABLE revocations (
    id         bigserial   PRIMARY KEY,
    kind       text        NOT NULL CHECK (kind IN ('jti', 'sid', 'user', 'device')),
    subject    text        NOT NULL,
    reason     text        NOT NULL,
    revoked_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX revocations_recorded_idx ON revocations (recorded_at);
CREATE INDEX revocations_expires_idx ON revocations (expires_at);

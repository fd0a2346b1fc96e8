-- Notifications and commands the batch writer could not store (a value PostgreSQL refused):
-- kept here with the error instead of blocking every later write. payload is text, not jsonb,
-- because what jsonb refused is exactly what must be kept.

CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('notification', 'command')),
    message_id  bigint      NOT NULL,
    payload     text        NOT NULL,
    error       text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letters_recorded_idx ON dead_letters (recorded_at);
CREATE INDEX dead_letters_message_idx ON dead_letters (message_id);

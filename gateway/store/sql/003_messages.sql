-- Notifications and commands. Ids come from one sequence handed out in blocks, so an instance
-- can number messages in memory and write them later in batches.

CREATE SEQUENCE message_id_blocks INCREMENT BY 1000 START WITH 1000;

CREATE TABLE notifications (
    id             bigint      PRIMARY KEY,
    device_id      text        NOT NULL,
    network_id     bigint      NOT NULL,
    device_type_id bigint,
    notification   text        NOT NULL,
    parameters     jsonb,
    "timestamp"    timestamptz NOT NULL
);
CREATE INDEX notifications_device_ts_idx ON notifications (device_id, "timestamp");
CREATE INDEX notifications_network_ts_idx ON notifications (network_id, "timestamp");
CREATE INDEX notifications_ts_idx ON notifications ("timestamp");

CREATE TABLE commands (
    id             bigint      PRIMARY KEY,
    device_id      text        NOT NULL,
    network_id     bigint      NOT NULL,
    device_type_id bigint,
    user_id        bigint,
    command        text        NOT NULL,
    parameters     jsonb,
    lifetime       integer,
    status         text,
    result         jsonb,
    "timestamp"    timestamptz NOT NULL,
    last_updated   timestamptz NOT NULL
);
CREATE INDEX commands_device_ts_idx ON commands (device_id, "timestamp");
CREATE INDEX commands_network_ts_idx ON commands (network_id, "timestamp");
CREATE INDEX commands_updated_idx ON commands (last_updated);

-- Networks, memberships and devices.

CREATE TABLE networks (
    id          bigserial PRIMARY KEY,
    name        text      NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX networks_name_key ON networks (lower(name));

CREATE TABLE user_networks (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    network_id bigint NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, network_id)
);
CREATE INDEX user_networks_network_idx ON user_networks (network_id);

CREATE TABLE devices (
    id             text    PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name           text    NOT NULL,
    data           jsonb,
    network_id     bigint  NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    device_type_id bigint,
    is_blocked     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_network_idx ON devices (network_id);

-- DeviceHive: device types (and which of them a client user may reach), configuration
-- properties and plugins.

CREATE TABLE device_types (
    id          bigserial PRIMARY KEY,
    name        text      NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX device_types_name_key ON device_types (lower(name));

-- Devices saved before device types existed may carry any deviceTypeId: each becomes a type of
-- its own (renamable later), so the constraint below holds without losing what they said.
INSERT INTO device_types (id, name)
SELECT DISTINCT device_type_id, 'device type ' || device_type_id
FROM devices WHERE device_type_id IS NOT NULL;
SELECT setval(pg_get_serial_sequence('device_types', 'id'),
              greatest(coalesce((SELECT max(id) FROM device_types), 0), 1),
              (SELECT count(*) FROM device_types) > 0);

ALTER TABLE devices ADD CONSTRAINT devices_device_type_fkey
    FOREIGN KEY (device_type_id) REFERENCES device_types (id) ON DELETE RESTRICT;
CREATE INDEX devices_device_type_idx ON devices (device_type_id);

-- DeviceHive's user <-> device type access: all of them, or the listed ones.
ALTER TABLE users ADD COLUMN all_device_types_available boolean NOT NULL DEFAULT true;

CREATE TABLE user_device_types (
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_type_id bigint NOT NULL REFERENCES device_types (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, device_type_id)
);
CREATE INDEX user_device_types_type_idx ON user_device_types (device_type_id);

-- DeviceHive's configuration properties: named values an administrator keeps for clients
-- (ManageConfiguration), versioned so a client can tell a change.
CREATE TABLE configuration (
    name           text   PRIMARY KEY,
    value          text   NOT NULL,
    entity_version bigint NOT NULL DEFAULT 0
);

-- Plugins: a token pair bound to a topic (what its subscriptions may cover), owned by the user
-- who registered it; deleting the plugin revokes its login session (sid).
CREATE TABLE plugins (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL,
    description text,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    topic       jsonb       NOT NULL,
    sid         uuid        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX plugins_name_key ON plugins (lower(name));

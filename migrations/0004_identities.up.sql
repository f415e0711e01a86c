-- Links from upstream identities (a connector's subject) to local users.
CREATE TABLE identities (
    connector_id text NOT NULL,
    subject      text NOT NULL,
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data         jsonb NOT NULL,
    PRIMARY KEY (connector_id, subject)
);
CREATE INDEX identities_user_id ON identities (user_id);

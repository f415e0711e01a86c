-- Pending authorization requests while the user signs in and consents.
CREATE TABLE interactions (
    id         text PRIMARY KEY,
    data       jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX interactions_expires_at ON interactions (expires_at);

-- Bearer tokens of the admin API, stored as SHA-256 hashes.
CREATE TABLE admin_tokens (
    id         text PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    hash       bytea NOT NULL UNIQUE,
    data       jsonb NOT NULL,
    expires_at timestamptz -- NULL: never
);

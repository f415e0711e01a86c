-- Opaque access tokens, keyed by the SHA-256 of the token.
CREATE TABLE access_tokens (
    hash       bytea PRIMARY KEY,
    data       jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX access_tokens_expires_at ON access_tokens (expires_at);

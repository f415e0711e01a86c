-- The JWT IDs of client assertions (RFC 7523), until they expire: a
-- replayed assertion is refused by every replica.
CREATE TABLE assertions (
    key        bytea PRIMARY KEY, -- SHA-256 of the issuer (client) and the jti
    expires_at timestamptz NOT NULL
);
CREATE INDEX assertions_expires_at ON assertions (expires_at);

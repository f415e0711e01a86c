-- The provider's state, split by role. Secrets and tokens are stored only as
-- SHA-256 hashes (bytea keys); records are JSON with the queried and
-- mutated fields as columns, which are authoritative where both exist.

CREATE TABLE clients (
    id   text PRIMARY KEY,
    data jsonb NOT NULL
);

CREATE TABLE users (
    id       text PRIMARY KEY,
    username text NOT NULL UNIQUE,
    data     jsonb NOT NULL
);

CREATE TABLE auth_codes (
    hash       bytea PRIMARY KEY,
    data       jsonb NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX auth_codes_expires_at ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       bytea PRIMARY KEY,
    family_id  text NOT NULL,
    data       jsonb NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

CREATE TABLE sessions (
    id       text PRIMARY KEY,
    hash     bytea NOT NULL UNIQUE,
    data     jsonb NOT NULL,
    deadline timestamptz NOT NULL -- min(idle, absolute expiry)
);
CREATE INDEX sessions_deadline ON sessions (deadline);

CREATE TABLE consents (
    user_id    text NOT NULL,
    client_id  text NOT NULL,
    data       jsonb NOT NULL,
    expires_at timestamptz, -- NULL: never
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_expires_at ON consents (expires_at);

CREATE TABLE signing_keys (
    id           text PRIMARY KEY,
    alg          text NOT NULL,
    state        text NOT NULL CHECK (state IN ('next', 'active', 'retired')),
    encrypted    bytea NOT NULL, -- AES-256-GCM under the key-encryption key
    created_at   timestamptz NOT NULL,
    activates_at timestamptz NOT NULL,
    retires_at   timestamptz,
    remove_at    timestamptz
);

CREATE TABLE revocations (
    jti        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX revocations_expires_at ON revocations (expires_at);

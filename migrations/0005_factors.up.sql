-- Second factors (TOTP, WebAuthn credentials, recovery codes). counter and
-- last_used_at are authoritative over the JSON: UseFactor moves them
-- forward atomically.
CREATE TABLE factors (
    user_id      text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    id           text NOT NULL,
    kind         text NOT NULL,
    counter      bigint NOT NULL,
    last_used_at timestamptz,
    data         jsonb NOT NULL,
    PRIMARY KEY (user_id, id)
);

-- The account page lists a user's sessions.
CREATE INDEX sessions_user_id ON sessions ((data->>'user_id'));

-- The back-channel logout queue (OpenID Connect Back-Channel Logout 1.0):
-- logout tokens owed to clients, kept until delivered or given up.
CREATE TABLE logout_deliveries (
    id      text PRIMARY KEY,
    next_at timestamptz NOT NULL,
    data    jsonb NOT NULL
);
CREATE INDEX logout_deliveries_next_at ON logout_deliveries (next_at);

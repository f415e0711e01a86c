-- Audit events (admin changes and security events), kept for the retention.
CREATE TABLE audit_events (
    id         text PRIMARY KEY, -- sorts as its time does
    time       timestamptz NOT NULL,
    event      text NOT NULL,
    actor      text NOT NULL,
    user_id    text NOT NULL,
    client_id  text NOT NULL,
    data       jsonb NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX audit_events_event ON audit_events (event, id);
CREATE INDEX audit_events_user_id ON audit_events (user_id, id);
CREATE INDEX audit_events_expires_at ON audit_events (expires_at);

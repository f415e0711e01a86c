DROP TABLE revocations;
DROP TABLE signing_keys;
DROP TABLE consents;
DROP TABLE sessions;
DROP TABLE refresh_tokens;
DROP TABLE auth_codes;
DROP TABLE users;
DROP TABLE clients;

// Package migrations owns the PostgreSQL schema: numbered NNNN_name.up.sql
// and NNNN_name.down.sql files embedded in the binary, and the runner that
// applies them — one transaction per migration, recorded in a version table,
// under an advisory lock so replicas starting together do not race.
package migrations

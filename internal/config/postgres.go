package config

import (
	"os"
	"regexp"
)

// PostgresDSNEnv is the environment variable that gives the postgres
// store's DSN when store.dsn is not set: a DSN usually holds a password,
// which is better kept out of a config file.
const PostgresDSNEnv = "PARKINGLOT_POSTGRES_DSN"

// postgresSchema is pgstore's rule for schema names: a lower-case SQL
// identifier that needs no quoting.
var postgresSchema = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// withPostgresDefaults takes the DSN from the environment for a postgres
// store without one.
func (s Store) withPostgresDefaults() Store {
	if s.Type == StorePostgres && s.DSN == "" {
		s.DSN = os.Getenv(PostgresDSNEnv)
	}
	return s
}

// validatePostgres checks the postgres store's fields, and that no other
// store type sets them. The DSN itself is parsed when the store connects;
// no message quotes it, since it may hold a password.
func (s Store) validatePostgres() error {
	if s.Type != StorePostgres {
		for _, f := range []struct {
			name string
			set  bool
		}{{"dsn", s.DSN != ""}, {"schema", s.Schema != ""}, {"maxConns", s.MaxConns != 0}} {
			if f.set {
				return fieldErr("store."+f.name, "applies to store type postgres only, not %q", s.Type)
			}
		}
		return nil
	}
	switch {
	case s.DSN == "":
		return fieldErr("store.dsn", "is required for store type postgres (or set %s), such as postgres://user@host:5432/db", PostgresDSNEnv)
	case s.Schema != "" && !postgresSchema.MatchString(s.Schema):
		return fieldErr("store.schema", "must be 1-63 characters of [a-z0-9_], not starting with a digit, got %q", clip(s.Schema))
	case s.MaxConns < 0:
		return fieldErr("store.maxConns", "must not be negative, got %d", s.MaxConns)
	}
	return nil
}

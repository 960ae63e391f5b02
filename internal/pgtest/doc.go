// Package pgtest runs a throwaway PostgreSQL cluster for tests of the
// PostgreSQL backend.
//
// Start runs initdb into a new temporary directory and pg_ctl start on a
// free loopback port (fsync on, as in production: a test of a durable store
// on a cluster that does not sync proves less), with its unix socket in the
// same directory; Close stops it and removes the directory. A test binary
// starts one cluster in TestMain and gives each backend a fresh schema
// (Cluster.Schema), so that parallel tests never see each other's rows.
//
// The PostgreSQL server programs are found on PATH or under
// /usr/lib/postgresql/*/bin (Debian's layout). Their absence is an error,
// never a skip: a backend is not silently left untested. initdb refuses to
// run as root; under root (CI containers) the cluster is created and run as
// the "postgres" system user through runuser.
package pgtest

// Package postgres runs the real parkinglot binary on the postgres store,
// against a throwaway PostgreSQL cluster (internal/pgtest): the HTTP
// contract suite, `parkinglot migrate`, and several servers sharing one
// database, checked by an observer independent of the scheduler.
package postgres

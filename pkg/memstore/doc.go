// Package memstore is the in-memory backend of Parkinglot, for tests, for
// library use, and as the reference implementation of core's ports.
//
// It keeps DynamoDB's and SQS's semantics, not just their interfaces: every
// pool, task, key, mailbox and audit log is its own item with its own lock;
// Commit locks only the items a transaction names (in one canonical order),
// checks every condition and applies every write or none, exactly as a
// TransactWriteItems call does; the due-time index is a separate structure
// updated with each write, like a global secondary index; and the parking
// queue is at-least-once with a visibility timeout. Races that the AWS
// backend faces are therefore faced here too, instead of being hidden by one
// big lock.
package memstore

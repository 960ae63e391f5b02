package pebblestore

// Flush writes the memtable to table files, so that tests can damage them.
func Flush(s *Store) error { return s.db.Flush() }

// Seq returns the last sequence number committed. Call it only while no
// write is in progress: the writer goroutine owns it.
func Seq(s *Store) uint64 { return s.seq }

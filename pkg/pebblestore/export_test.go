package pebblestore

// Flush writes the memtable to table files, so that tests can damage them.
func Flush(s *Store) error { return s.db.Flush() }

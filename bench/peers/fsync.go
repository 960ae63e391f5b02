package main

import (
	"os"
	"syscall"
	"time"
)

// fsyncProbe writes 4 KiB and fdatasyncs it n times in a file in dir (a
// preallocated file, as a write-ahead log's), and returns the syncs' p50,
// p95, p99: the disk's floor under a durable commit at this moment.
func fsyncProbe(dir string, n int) ([3]time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return [3]time.Duration{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.Write(make([]byte, n*len(buf))); err != nil {
		return [3]time.Duration{}, err
	}
	if err := f.Sync(); err != nil {
		return [3]time.Duration{}, err
	}
	ds := make([]time.Duration, 0, n)
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i*len(buf))); err != nil {
			return [3]time.Duration{}, err
		}
		start := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return [3]time.Duration{}, err
		}
		ds = append(ds, time.Since(start))
	}
	return percentiles(ds, 0.50, 0.95, 0.99), nil
}

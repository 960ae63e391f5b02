package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// procStat returns a process's parent, its own CPU time and its waited-for
// children's, from /proc/PID/stat (clock ticks of 10ms).
func procStat(pid int) (ppid int, self, children time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return 0, 0, 0, false
	}
	// Fields from the state (field 3) on.
	f := strings.Fields(string(b[i+2:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	n := func(k int) int64 { v, _ := strconv.ParseInt(f[k-3], 10, 64); return v }
	tick := 10 * time.Millisecond
	return int(n(4)), time.Duration(n(14)+n(15)) * tick, time.Duration(n(16)+n(17)) * tick, true
}

// treeCPU returns the CPU time of pid and of its children, living or
// exited (and waited for): a server such as PostgreSQL runs one process per
// connection. Zero when pid is 0 or gone.
func treeCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	_, self, children, ok := procStat(pid)
	if !ok {
		return 0
	}
	total := self + children
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil || child == pid {
			continue
		}
		if ppid, cself, _, ok := procStat(child); ok && ppid == pid {
			total += cself
		}
	}
	return total
}

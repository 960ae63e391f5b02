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
// connection. False when pid is 0 or gone.
func treeCPU(pid int) (time.Duration, bool) {
	if pid <= 0 {
		return 0, false
	}
	_, self, children, ok := procStat(pid)
	if !ok {
		return 0, false
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
	return total, true
}

// cpuMeter measures a server's CPU time per job over a run: -1 when its
// processes could not be read, 0 without a pid.
type cpuMeter struct {
	pid   int
	start time.Duration
	ok    bool
}

func startCPU(pid int) cpuMeter {
	start, ok := treeCPU(pid)
	return cpuMeter{pid: pid, start: start, ok: ok}
}

// perJob returns the CPU µs per job since startCPU. Call it before the
// run's clients disconnect, while the server's processes still serve them.
func (m cpuMeter) perJob(jobs int) float64 {
	if m.pid <= 0 {
		return 0
	}
	end, ok := treeCPU(m.pid)
	if !m.ok || !ok || end < m.start {
		return -1
	}
	return float64((end - m.start).Microseconds()) / float64(jobs)
}

package mototest

import "syscall"

// procAttr puts moto in a process group of its own (Stop signals the
// group) and has the kernel kill it when the test process dies, also by a
// test timeout's panic, which runs no cleanup: an orphaned moto would go on
// taking a core from the tests that follow.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

package testserver

import "syscall"

// procAttr has the kernel kill the server when the test process dies,
// also by a test timeout's panic, which runs no cleanup.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

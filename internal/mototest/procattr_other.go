//go:build !linux

package mototest

import "syscall"

// procAttr puts moto in a process group of its own (Stop signals the
// group).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

//go:build !linux

package gateway

import "syscall"

// bindToLoopback does nothing where SO_BINDTODEVICE does not exist: the
// wildcard listener takes connections from every interface.
func bindToLoopback(_, _ string, _ syscall.RawConn) error { return nil }

//go:build !linux

package redisproc

import "syscall"

// childAttr: outside Linux children are only stopped by their parent's
// clean-up.
func childAttr() *syscall.SysProcAttr { return nil }

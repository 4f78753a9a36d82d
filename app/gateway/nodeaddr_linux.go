package gateway

import "syscall"

// bindToLoopback binds a wildcard socket to the loopback interface
// (SO_BINDTODEVICE "lo"): it then takes connections to any 127/8 address,
// and none from another interface.
func bindToLoopback(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "lo")
	}); err != nil {
		return err
	}
	return serr
}

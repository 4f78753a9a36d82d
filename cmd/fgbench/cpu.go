package main

import (
	"os"
	"time"
)

// cpuMeter samples the CPU time of the servers' process and of this (the
// load) process. With the servers in this process, only the total is known
// and it is reported as the load side's.
type cpuMeter struct {
	serverPID int // 0: servers run in this process
}

func (m cpuMeter) sample() (server, load time.Duration) {
	server = -1
	if m.serverPID > 0 {
		server = procCPU(m.serverPID)
	}
	return server, procCPU(os.Getpid())
}

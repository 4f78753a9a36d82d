// Package replicaid names a gateway replica in leases, fencing tokens and
// logs: "<host>-<pid>-<random>", unique across restarts and machines.
package replicaid

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
)

// New returns a fresh replica id.
func New() string {
	host, _ := os.Hostname()
	b := make([]byte, 3)
	rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

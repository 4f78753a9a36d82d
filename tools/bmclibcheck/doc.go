// Package bmclibcheck drives a node's own address (issue 16) with bmclib v2
// (github.com/bmc-toolbox/bmclib/v2, Tinkerbell rufio's library), which
// takes a host and port only and no system name: it runs `fishgate demo`
// and points bmclib at http://127.0.10.1:PORT.
//
// It is a module of its own so that bmclib's dependencies (an older gofish
// among them) stay out of the gateway's go.mod; it builds the fishgate
// command from the repository and imports nothing of it. `make test` runs it.
package bmclibcheck

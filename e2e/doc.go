// Package e2e holds end-to-end tests: a whole fishgate (app/demo: an embedded
// Redis, simulated BMCs and the gateway) driven over loopback HTTP by the
// clients that use it in the field: sushy (Ironic), redfishtool, gofish and a
// MAAS-shaped plain HTTP client (docs/clients.md). Every outcome is checked
// both at the gateway and at the simulated machine behind it.
//
// The external tools are Debian's (python3-sushy, redfishtool). Tests that
// need one skip when it is missing, and fail instead when CI is set.
package e2e

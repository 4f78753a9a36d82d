// Package testkit is what the tests of every package share, and nothing
// but tests imports it: a Redis to run against (miniredis, a throwaway
// real redis-server, a real Redis Cluster or another topology), whose
// clients fail a test on a call Redis Cluster would refuse; the real
// ipmitool and malformed IPMI packets; validation against the DMTF Redfish
// schemas; loopback addresses that refuse connections; and a buffer safe
// to read while it is written.
package testkit

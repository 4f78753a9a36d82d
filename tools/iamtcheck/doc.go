// Package iamtcheck drives the simulator's Intel AMT front with an AMT
// client nobody here wrote, github.com/jacobweinstock/iamt (bmclib's AMT
// provider): its tests and a benchmark to compare with backends/amt's
// BenchmarkPowerAction.
//
// It is a module of its own so that iamt's dependencies (2015-2018 SOAP and
// UUID modules) stay out of the gateway's go.mod; `make test` runs it.
package iamtcheck

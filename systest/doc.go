// Package systest is Serbero's system test: the serbero binary, built
// once, runs every service as its own OS process on 127.0.0.1 ports with
// its own configuration file and token file; two dev relays run as
// separate processes (serbero devtool relay); the fake Mostro node (v2,
// with proof of work) and the fake solvers run in the test process; each
// test has its own Postgres database. Scenarios and faults are in the
// _test.go files; docs/testing.md says how to run them, what they cover
// and what at-least-once delivery still allows.
//
// The package has no non-test code besides this comment.
package systest

// Package clustertest installs the Helm chart on a real single-node
// Kubernetes (the local test cluster of scripts/k8s, `make k8s-up`) and
// drives it as a platform team would: helm install with an external Postgres
// and the Nostr key from an existing Secret, a dispute from a fake Mostro
// node through relaygw's and intakesvc's pods to fake solvers, a handoff
// through escalationsvc's pods, helm upgrade and rollback while disputes
// stream, pods killed mid-work, helm test and helm uninstall. The relays, the
// fake Mostro node and the fake solvers run in the test process, reached by
// the pods on the cluster bridge's gateway address.
//
// The tests are behind the build tag "cluster" and need the cluster up
// (its settings are read from $K8S_DIR/cluster.env):
//
//	make k8s-up && make k8s-test && make k8s-down   # or: make k8s-ci
//
// What they check and what the cluster cannot show is in
// docs/deploy.md#10-tried-on.
package clustertest

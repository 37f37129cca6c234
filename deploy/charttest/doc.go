// Package charttest holds the checks of what deploy/ ships: the Helm chart in
// deploy/k8s and the Dockerfile. The tests are behind the build tag "chart"
// because they run the pinned helm (bin/helm) and build the serbero binary;
// `make helm-check` builds the tools and runs them:
//
//	go test -tags chart ./deploy/...
//
// They render every value set of deploy/k8s/ci and assert what a reviewer
// checks by hand: only relaygw's pod references the Nostr key Secret, every
// container runs as non-root with a read-only root filesystem, the HPA targets
// escalationsvc, relaygw is a singleton, each NetworkPolicy admits gRPC only
// from the components that call it, the probes are native gRPC on the right
// health service names, and the rendered config.toml, environment and mounts
// load with pkg/config exactly as `serbero serve --target=<component>` would
// load them. They also check that values.schema.json rejects wrong values and
// knows every key of pkg/config, that the Dockerfile's build command is
// `make build`'s, and that `make build` produces a static binary.
package charttest

//go:build chart

package charttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
)

// Paths, relative to this package's directory (where go test runs).
const (
	repoRoot    = "../.."
	chartDir    = "../k8s"
	kubeVersion = "1.30"
	namespace   = "serbero"
	release     = "serbero"
)

// components lists the services in start order, with what the chart must
// wire for each: the readiness health service (the generated service name)
// and the peers it dials (TestPeersMatchRunner keeps these in step with
// internal/runner).
var components = []struct {
	name          string
	healthService string
	peers         []string
}{
	{"relaygw", relaygwv1.RelayGatewayService_ServiceDesc.ServiceName, nil},
	{"intakesvc", intakesvcv1.IntakeService_ServiceDesc.ServiceName, []string{"relaygw"}},
	{"authsvc", authsvcv1.AuthService_ServiceDesc.ServiceName, []string{"relaygw"}},
	{"mediationsvc", mediationsvcv1.MediationService_ServiceDesc.ServiceName, []string{"relaygw", "authsvc", "intakesvc"}},
	{"escalationsvc", escalationsvcv1.EscalationService_ServiceDesc.ServiceName, []string{"relaygw", "intakesvc"}},
}

// helmBin is the pinned helm, built by `make bin/helm` (HELM overrides it).
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("HELM")
	if p == "" {
		p = filepath.Join(repoRoot, "bin", "helm")
	}
	abs, err := filepath.Abs(p)
	require.NoError(t, err)
	_, err = os.Stat(abs)
	require.NoError(t, err, "helm not found at %s: run `make helm-check` (it builds bin/helm) or set HELM", abs)
	return abs
}

// helmTemplate renders the chart with the given extra arguments. It returns
// helm's error output as the error when rendering fails.
func helmTemplate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, args...)
	cmd := exec.Command(helmBin(t), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("helm %s: %w: %s", strings.Join(full, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// obj is one rendered Kubernetes object.
type obj map[string]any

func (o obj) kind() string { return str(o["kind"]) }
func (o obj) name() string { return str(dig(o, "metadata", "name")) }
func (o obj) labels() map[string]any {
	m, _ := dig(o, "metadata", "labels").(map[string]any)
	return m
}
func (o obj) annotations() map[string]any {
	m, _ := dig(o, "metadata", "annotations").(map[string]any)
	return m
}
func (o obj) component() string { return str(o.labels()["app.kubernetes.io/component"]) }
func (o obj) String() string    { return o.kind() + "/" + o.name() }

// manifest is a rendered release.
type manifest []obj

func parseManifest(t *testing.T, text string) manifest {
	t.Helper()
	var out manifest
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if doc != nil {
			out = append(out, obj(doc))
		}
	}
	require.NotEmpty(t, out, "the chart rendered nothing")
	return out
}

func render(t *testing.T, args ...string) manifest {
	t.Helper()
	text, err := helmTemplate(t, args...)
	require.NoError(t, err)
	return parseManifest(t, text)
}

func (m manifest) ofKind(kind string) []obj {
	var out []obj
	for _, o := range m {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (m manifest) find(kind, name string) (obj, bool) {
	for _, o := range m {
		if o.kind() == kind && o.name() == name {
			return o, true
		}
	}
	return nil, false
}

// deployment returns the Deployment of a component, if rendered.
func (m manifest) deployment(component string) (obj, bool) {
	for _, o := range m.ofKind("Deployment") {
		if o.component() == component {
			return o, true
		}
	}
	return nil, false
}

// podSpecs returns every pod template of the release with its owner.
func (m manifest) podSpecs() map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range m {
		switch o.kind() {
		case "Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet":
			out[o.String()] = dig(o, "spec", "template", "spec").(map[string]any)
		case "CronJob":
			out[o.String()] = dig(o, "spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
		case "Pod":
			out[o.String()] = dig(o, "spec").(map[string]any)
		}
	}
	return out
}

// dig walks nested maps (string keys) and lists (int indexes).
func dig(v any, path ...any) any {
	if o, ok := v.(obj); ok {
		v = map[string]any(o)
	}
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func toInt(t *testing.T, v any) int {
	t.Helper()
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	t.Fatalf("not a number: %#v", v)
	return 0
}

// containers returns a pod spec's containers, then its init and ephemeral
// containers: [0] is the pod's main container.
func containers(spec map[string]any) []map[string]any {
	var out []map[string]any
	for _, key := range []string{"containers", "initContainers", "ephemeralContainers"} {
		for _, c := range list(spec[key]) {
			out = append(out, c.(map[string]any))
		}
	}
	return out
}

// envOf returns a container's literal environment.
func envOf(c map[string]any) map[string]string {
	out := map[string]string{}
	for _, e := range list(c["env"]) {
		e := e.(map[string]any)
		out[str(e["name"])] = str(e["value"])
	}
	return out
}

// secretRefs lists every Secret a pod spec references, by any route.
func secretRefs(spec map[string]any) []string {
	var out []string
	for _, v := range list(spec["volumes"]) {
		if s := str(dig(v, "secret", "secretName")); s != "" {
			out = append(out, s)
		}
		for _, src := range list(dig(v, "projected", "sources")) {
			if s := str(dig(src, "secret", "name")); s != "" {
				out = append(out, s)
			}
		}
	}
	for _, c := range containers(spec) {
		for _, e := range list(c["env"]) {
			if s := str(dig(e, "valueFrom", "secretKeyRef", "name")); s != "" {
				out = append(out, s)
			}
		}
		for _, e := range list(c["envFrom"]) {
			if s := str(dig(e, "secretRef", "name")); s != "" {
				out = append(out, s)
			}
		}
	}
	for _, s := range list(spec["imagePullSecrets"]) {
		out = append(out, str(dig(s, "name")))
	}
	return out
}

// mentions reports whether any string inside v equals s.
func mentions(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return x == s
	case map[string]any:
		for _, e := range x {
			if mentions(e, s) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if mentions(e, s) {
				return true
			}
		}
	}
	return false
}

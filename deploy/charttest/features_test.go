//go:build chart

package charttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var ciValues = func(name string) string { return filepath.Join(chartDir, "ci", name) }

// copyChart copies the chart into a temporary directory, with edit applied to
// Chart.yaml's text, and returns the copy's path.
func copyChart(t *testing.T, edit func(string) string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "k8s")
	require.NoError(t, os.CopyFS(dst, os.DirFS(chartDir)))
	p := filepath.Join(dst, "Chart.yaml")
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(p, 0o644))
	require.NoError(t, os.WriteFile(p, []byte(edit(string(raw))), 0o644))
	return dst
}

// templates returns each Deployment's pod template as YAML.
func templates(t *testing.T, m manifest) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range m.ofKind("Deployment") {
		b, err := yaml.Marshal(dig(d, "spec", "template"))
		require.NoError(t, err)
		out[d.name()] = string(b)
	}
	return out
}

// A chart upgrade that changes nothing the pods run (a new chart version and
// appVersion, the same values and image) leaves every pod template, and so
// every pod-template-hash, unchanged: nothing restarts.
func TestPodTemplatesIgnoreChartVersion(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		t.Run(vs.file, func(t *testing.T) {
			t.Parallel()
			args := []string{"-f", ciValues(vs.file), "--set", "image.tag=1.2.3"}
			before := templates(t, render(t, args...))
			bumped := copyChart(t, func(s string) string {
				s = regexp.MustCompile(`(?m)^version: .*$`).ReplaceAllString(s, "version: 9.9.9")
				return regexp.MustCompile(`(?m)^appVersion: .*$`).ReplaceAllString(s, `appVersion: "9.9.9"`)
			})
			full := append([]string{"template", release, bumped, "--namespace", namespace, "--kube-version", kubeVersion}, args...)
			out, err := exec.Command(helmBin(t), full...).Output()
			require.NoError(t, err)
			after := templates(t, parseManifest(t, string(out)))
			require.NotEmpty(t, before)
			require.Equal(t, before, after, "a chart version bump changed a pod template")
			for name, tpl := range after {
				require.NotContains(t, tpl, "9.9.9", name)
			}
		})
	}
}

// Each component runs as its own ServiceAccount, without an API token; a
// component's annotations are on its ServiceAccount alone.
func TestServiceAccountPerComponent(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", ciValues("keda-values.yaml"))
	seen := map[string]string{}
	for _, c := range components {
		dep, ok := m.deployment(c.name)
		require.True(t, ok)
		sa := str(dig(dep, "spec", "template", "spec", "serviceAccountName"))
		require.Equal(t, "serbero-"+c.name, sa)
		require.NotContains(t, seen, sa, "%s shares a ServiceAccount with %s", c.name, seen[sa])
		seen[sa] = c.name
		obj, ok := m.find("ServiceAccount", sa)
		require.True(t, ok, "ServiceAccount %s", sa)
		require.Equal(t, false, obj["automountServiceAccountToken"])
		require.Equal(t, c.name, obj.component())
		ann := obj.annotations()
		if c.name == "relaygw" {
			require.Equal(t, "serbero-relaygw@example.iam.gserviceaccount.com", ann["iam.gke.io/gcp-service-account"])
		} else {
			require.NotContains(t, ann, "iam.gke.io/gcp-service-account", "%s gets relaygw's identity", c.name)
		}
	}

	// Shared annotations go on every ServiceAccount; create false uses existing ones.
	m = render(t, "-f", ciValues("default-values.yaml"), "--set", "serviceAccount.create=false",
		"--set", "serviceAccount.name=shared", "--set", "relaygw.serviceAccount.name=keyholder")
	require.Empty(t, m.ofKind("ServiceAccount"))
	for _, c := range components {
		dep, _ := m.deployment(c.name)
		want := "shared"
		if c.name == "relaygw" {
			want = "keyholder"
		}
		require.Equal(t, want, str(dig(dep, "spec", "template", "spec", "serviceAccountName")), c.name)
	}
	_, err := helmTemplate(t, "-f", ciValues("default-values.yaml"), "--set", "serviceAccount.create=false")
	require.ErrorContains(t, err, "serviceAccount.name is required")
}

// By default every component's replicas spread over zones and nodes, and the
// constraints select that component's own pods.
func TestTopologySpreadSelectsComponent(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		m := render(t, "-f", ciValues(vs.file))
		for _, name := range vs.enabled() {
			dep, _ := m.deployment(name)
			tscs := list(dig(dep, "spec", "template", "spec", "topologySpreadConstraints"))
			require.NotEmpty(t, tscs, "%s %s has no topology spread", vs.file, name)
			podLabels := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
			for _, tsc := range tscs {
				sel, ok := dig(tsc, "labelSelector", "matchLabels").(map[string]any)
				require.True(t, ok, "%s %s: a constraint without labelSelector selects no pods", vs.file, name)
				require.True(t, mapsSubset(sel, podLabels), "%s %s: the constraint does not select its own pods", vs.file, name)
				require.Equal(t, name, sel["app.kubernetes.io/component"])
			}
		}
	}
	// A constraint with its own selector is kept as given.
	m := render(t, "-f", ciValues("default-values.yaml"), "--set-json",
		`intakesvc.topologySpreadConstraints=[{"maxSkew":2,"topologyKey":"rack","whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"x":"y"}}}]`)
	dep, _ := m.deployment("intakesvc")
	tscs := list(dig(dep, "spec", "template", "spec", "topologySpreadConstraints"))
	require.Len(t, tscs, 1)
	require.Equal(t, map[string]any{"x": "y"}, dig(tscs[0], "labelSelector", "matchLabels"))
	require.Nil(t, dig(tscs[0], "matchLabelKeys"))
}

// initContainers, extraContainers, extraVolumes and extraObjects render,
// templated, where they belong.
func TestExtras(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", ciValues("keda-values.yaml"), "--set-json",
		`relaygw.extraVolumes=[{"name":"scratch","emptyDir":{}}]`, "--set-json",
		`relaygw.extraVolumeMounts=[{"name":"scratch","mountPath":"/scratch"}]`)
	for _, c := range components {
		dep, _ := m.deployment(c.name)
		spec := dig(dep, "spec", "template", "spec").(map[string]any)
		inits := list(spec["initContainers"])
		require.Len(t, inits, 1, c.name)
		require.Equal(t, "wait-a-moment", dig(inits[0], "name"))
		require.Equal(t, "ghcr.io/serbero/serbero:0.1.0", dig(inits[0], "image"), "templated with tpl")
		var names []string
		for _, ctr := range list(spec["containers"]) {
			names = append(names, str(dig(ctr, "name")))
		}
		if c.name == "escalationsvc" {
			require.Equal(t, []string{"serbero", "log-shipper"}, names)
			require.Equal(t, []any{"--release=serbero"}, dig(list(spec["containers"])[1], "args"))
		} else {
			require.Equal(t, []string{"serbero"}, names, c.name)
		}
		var vols []string
		for _, v := range list(spec["volumes"]) {
			vols = append(vols, str(dig(v, "name")))
		}
		require.Equal(t, c.name == "relaygw", slices.Contains(vols, "scratch"), c.name)
	}
	cm, ok := m.find("ConfigMap", "serbero-runbook")
	require.True(t, ok, "extraObjects rendered")
	require.Equal(t, "serbero", cm.labels()["app.kubernetes.io/instance"], "extraObjects get the release labels")
	require.Equal(t, "https://runbooks.example.com/serbero", dig(cm, "data", "url"))
}

// configToml is shipped byte for byte, hashed into the pods; secrets in it
// are refused.
func TestConfigTomlAsIs(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(ciValues("keda-values.yaml"))
	require.NoError(t, err)
	var vals struct {
		ConfigToml string `yaml:"configToml"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &vals))
	m := render(t, "-f", ciValues("keda-values.yaml"))
	cm, ok := m.find("ConfigMap", "serbero-config")
	require.True(t, ok)
	require.Equal(t, strings.TrimRight(vals.ConfigToml, "\n"), strings.TrimRight(str(dig(cm, "data", "config.toml")), "\n"))

	other := render(t, "-f", ciValues("keda-values.yaml"), "--set", "configToml=[serbero]\nlog_level = \"debug\"\n")
	depA, _ := m.deployment("intakesvc")
	depB, _ := other.deployment("intakesvc")
	require.NotEqual(t, dig(depA, "spec", "template", "metadata", "annotations", "checksum/config"),
		dig(depB, "spec", "template", "metadata", "annotations", "checksum/config"), "a configToml change rolls the pods")

	for secret, msg := range map[string]string{
		"[serbero]\nprivate_key = \"01\"\n":                 "configToml holds private_key",
		"[server]\n  auth_token = \"t\"\n":                  "configToml holds auth_token",
		"[database]\nurl = \"postgres://u:p@db/serbero\"\n": "configToml holds a Postgres url",
		"[database]\nurl = 'postgresql://u:p@db/serbero'\n": "configToml holds a Postgres url",
	} {
		_, err := helmTemplate(t, "-f", ciValues("keda-values.yaml"), "--set", "configToml="+secret)
		require.ErrorContains(t, err, msg)
	}
	// Without configToml, the Mostro pubkey is still required.
	_, err = helmTemplate(t)
	require.ErrorContains(t, err, "/config/mostro/pubkey")
}

// KEDA scales escalationsvc on the pending-handoff count: a ScaledObject on
// its Deployment (which then has no replicas), authenticated with the
// database Secret; exclusive with the HPA. (make helm-validate checks both
// objects against KEDA's CRDs.)
func TestKEDAScaledObject(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", ciValues("keda-values.yaml"))
	sos := m.ofKind("ScaledObject")
	require.Len(t, sos, 1)
	so := sos[0]
	dep, _ := m.deployment("escalationsvc")
	require.Equal(t, dep.name(), dig(so, "spec", "scaleTargetRef", "name"))
	require.Equal(t, 1, toInt(t, dig(so, "spec", "minReplicaCount")))
	require.Equal(t, 8, toInt(t, dig(so, "spec", "maxReplicaCount")))
	trig := list(dig(so, "spec", "triggers"))
	require.Len(t, trig, 1)
	require.Equal(t, "postgresql", dig(trig[0], "type"))
	require.Equal(t, "10", dig(trig[0], "metadata", "targetQueryValue"))
	require.Contains(t, dig(trig[0], "metadata", "query"), "FROM handoffs")
	ta, ok := m.find("TriggerAuthentication", str(dig(trig[0], "authenticationRef", "name")))
	require.True(t, ok)
	require.Equal(t, []any{map[string]any{"parameter": "connection", "name": "serbero-database", "key": "url"}},
		dig(ta, "spec", "secretTargetRef"))
	_, hasReplicas := dig(dep, "spec").(map[string]any)["replicas"]
	require.False(t, hasReplicas, "KEDA owns the replica count")
	require.Empty(t, m.ofKind("HorizontalPodAutoscaler"), "KEDA makes its own HPA")

	_, err := helmTemplate(t, "-f", ciValues("keda-values.yaml"), "--set", "escalationsvc.autoscaling.enabled=true")
	require.ErrorContains(t, err, "are exclusive")
	require.Empty(t, render(t, "-f", ciValues("default-values.yaml")).ofKind("ScaledObject"))
}

// helm test: one hook Pod asks every enabled component's readiness service,
// with its own ServiceAccount and no Secret; the NetworkPolicies admit it.
func TestHelmTestHook(t *testing.T) {
	t.Parallel()
	for _, vs := range valueSets {
		m := render(t, "-f", ciValues(vs.file))
		p, ok := m.find("Pod", vs.fullname+"-test-health")
		require.True(t, ok, vs.file)
		require.Equal(t, "test", p.annotations()["helm.sh/hook"])
		spec := dig(p, "spec").(map[string]any)
		require.Empty(t, spec["volumes"], "the test Pod mounts nothing (no Secret)")
		require.Empty(t, envOf(containers(spec)[0]), "the test Pod reads no Secret")
		sa := str(spec["serviceAccountName"])
		saObj, ok := m.find("ServiceAccount", sa)
		require.True(t, ok)
		require.Equal(t, "test", saObj.component())
		require.Equal(t, false, saObj["automountServiceAccountToken"])
		want := []any{"health", "--timeout=5s"}
		for _, c := range components {
			if slices.Contains(vs.enabled(), c.name) {
				want = append(want, vs.resourceName(c.name)+":50051="+c.healthService)
			}
		}
		require.Equal(t, want, dig(containers(spec)[0], "args"), vs.file)
	}
	require.Empty(t, render(t, "-f", ciValues("default-values.yaml"), "--set", "tests.enabled=false").ofKind("Pod"))
}

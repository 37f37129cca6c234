//go:build chart

package charttest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
)

// valueSet is one file of deploy/k8s/ci and what rendering it must produce.
type valueSet struct {
	file       string
	fullname   string
	keySecret  string // Secret holding the Nostr key
	keyKey     string
	dbSecret   string
	dbKey      string
	authSecret string // "" means the chart creates <fullname>-auth-token
	authKey    string
	disabled   []string
	replicas   map[string]int // components without an HPA
	hpa        *struct{ min, max int }
	reasoning  bool
	monitor    bool
	dbPolicy   bool
	keda       bool // escalationsvc scaled by a KEDA ScaledObject
}

var valueSets = []valueSet{
	{
		file: "default-values.yaml", fullname: "serbero",
		keySecret: "serbero-nostr-key", keyKey: "nostr-key", dbSecret: "serbero-database", dbKey: "url", authKey: "token",
		replicas: map[string]int{"relaygw": 1, "intakesvc": 1, "authsvc": 1, "mediationsvc": 1, "escalationsvc": 2},
	},
	{
		file: "escalation-autoscaled-values.yaml", fullname: "serbero",
		keySecret: "serbero-nostr-key", keyKey: "nostr-key", dbSecret: "serbero-database", dbKey: "url", authKey: "token",
		disabled: []string{"mediationsvc"},
		replicas: map[string]int{"relaygw": 1, "intakesvc": 1, "authsvc": 1},
		hpa:      &struct{ min, max int }{2, 5},
	},
	{
		file: "keda-values.yaml", fullname: "serbero",
		keySecret: "serbero-nostr-key", keyKey: "nostr-key", dbSecret: "serbero-database", dbKey: "url", authKey: "token",
		replicas: map[string]int{"relaygw": 1, "intakesvc": 1, "authsvc": 1, "mediationsvc": 1},
		keda:     true,
	},
	{
		file: "full-values.yaml", fullname: "serbero-prod",
		keySecret: "serbero-prod-nostr-key", keyKey: "nsec", dbSecret: "serbero-db-app", dbKey: "uri",
		authSecret: "serbero-service-token", authKey: "token",
		replicas:  map[string]int{"relaygw": 1, "intakesvc": 3, "authsvc": 2, "mediationsvc": 1},
		hpa:       &struct{ min, max int }{3, 20},
		reasoning: true, monitor: true, dbPolicy: true,
	},
}

func TestValueSets(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	require.NoError(t, err)
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	var covered []string
	for _, vs := range valueSets {
		covered = append(covered, vs.file)
	}
	require.ElementsMatch(t, names, covered, "every ci/*-values.yaml needs a row in valueSets (and vice versa)")

	for _, vs := range valueSets {
		t.Run(strings.TrimSuffix(vs.file, "-values.yaml"), func(t *testing.T) {
			t.Parallel()
			m := render(t, "-f", filepath.Join(chartDir, "ci", vs.file))
			checks := []struct {
				name string
				fn   func(*testing.T, valueSet, manifest)
			}{
				{"labels", checkLabels},
				{"key only in relaygw", checkKeyCustody},
				{"non-root hardened containers", checkSecurityContexts},
				{"relaygw singleton", checkRelaygwSingleton},
				{"replicas and HPA", checkScaling},
				{"PDBs", checkPDBs},
				{"services and probes", checkServicesAndProbes},
				{"network policies", checkNetworkPolicies},
				{"config loads as serve would", checkConfigLoads},
				{"migration hook", checkMigrationJob},
				{"auth token secret", checkAuthSecret},
				{"service monitor", checkServiceMonitor},
			}
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, vs, m)
				})
			}
		})
	}
}

// TestPeersMatchRunner: the peers the chart wires (addresses and
// NetworkPolicies) are the ones `serbero serve` dials, read from
// internal/runner/<component>.go.
func TestPeersMatchRunner(t *testing.T) {
	t.Parallel()
	// peers.conn(user, peer, address): the second argument is the peer.
	dial := regexp.MustCompile(`peers\.conn\(config\.Target\w+, config\.Target(\w+),`)
	for _, c := range components {
		src, err := os.ReadFile(filepath.Join(repoRoot, "internal", "runner", c.name+".go"))
		require.NoError(t, err)
		var got []string
		for _, m := range dial.FindAllStringSubmatch(string(src), -1) {
			got = append(got, strings.ToLower(m[1]))
		}
		require.ElementsMatch(t, c.peers, got, "%s dials %v; update the chart's componentTable and this test", c.name, got)
	}
	// The chart's own table says the same.
	helpers, err := os.ReadFile(filepath.Join(chartDir, "templates", "_helpers.tpl"))
	require.NoError(t, err)
	for _, c := range components {
		line := fmt.Sprintf("%s:\n  healthService: %s\n  peers: [%s]", c.name, c.healthService, strings.Join(c.peers, ", "))
		require.Contains(t, string(helpers), line, "componentTable entry of %s", c.name)
	}
}

func (vs valueSet) enabled() []string {
	var out []string
	for _, c := range components {
		if !slices.Contains(vs.disabled, c.name) {
			out = append(out, c.name)
		}
	}
	return out
}

func (vs valueSet) resourceName(component string) string { return vs.fullname + "-" + component }

func checkLabels(t *testing.T, vs valueSet, m manifest) {
	for _, o := range m {
		l := o.labels()
		for _, k := range []string{
			"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
			"app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart",
		} {
			require.NotEmpty(t, l[k], "%s lacks label %s", o, k)
		}
		require.Equal(t, "serbero", l["app.kubernetes.io/name"], o.String())
		require.Equal(t, release, l["app.kubernetes.io/instance"], o.String())
		require.Equal(t, "serbero", l["app.kubernetes.io/part-of"], o.String())
		require.Equal(t, namespace, str(dig(o, "metadata", "namespace")), "%s is not in the release namespace", o)
	}
	// Every enabled component has exactly its Deployment and Service, and nothing of a disabled one exists.
	for _, c := range components {
		var kinds []string
		for _, o := range m {
			if o.component() == c.name {
				kinds = append(kinds, o.kind())
			}
		}
		if slices.Contains(vs.disabled, c.name) {
			require.Empty(t, kinds, "disabled %s still renders objects", c.name)
			continue
		}
		require.Contains(t, kinds, "Deployment", c.name)
		require.Contains(t, kinds, "Service", c.name)
		require.Contains(t, kinds, "NetworkPolicy", c.name)
	}
}

// checkKeyCustody: the Nostr key Secret appears in relaygw's pod spec, as a
// read-only file named by SERBERO_PRIVATE_KEY_FILE, and nowhere else at all.
func checkKeyCustody(t *testing.T, vs valueSet, m manifest) {
	relaygw := "Deployment/" + vs.resourceName("relaygw")
	for owner, spec := range m.podSpecs() {
		refs := secretRefs(spec)
		if owner == relaygw {
			require.Contains(t, refs, vs.keySecret, "relaygw does not mount the key")
			continue
		}
		require.NotContains(t, refs, vs.keySecret, "%s references the Nostr key Secret", owner)
		for _, c := range containers(spec) {
			for name := range envOf(c) {
				require.NotContains(t, name, "PRIVATE_KEY", "%s sets %s", owner, name)
			}
		}
	}
	for _, o := range m {
		if o.String() == relaygw {
			continue
		}
		require.False(t, mentions(map[string]any(o), vs.keySecret), "%s mentions the key Secret %q", o, vs.keySecret)
	}

	dep, ok := m.deployment("relaygw")
	require.True(t, ok)
	spec := dig(dep, "spec", "template", "spec").(map[string]any)
	c := containers(spec)[0]
	env := envOf(c)
	_, inEnv := env["SERBERO_PRIVATE_KEY"]
	require.False(t, inEnv, "the key must come from a file, not an environment value")
	for _, e := range list(c["env"]) {
		require.Nil(t, dig(e, "valueFrom", "secretKeyRef"), "relaygw takes no secret through env")
	}
	path := env["SERBERO_PRIVATE_KEY_FILE"]
	require.NotEmpty(t, path)
	vol, mount := volumeFor(t, spec, c, path)
	require.Equal(t, vs.keySecret, str(dig(vol, "secret", "secretName")))
	require.Equal(t, true, mount["readOnly"], "the key mount must be read-only")
	require.LessOrEqual(t, toInt(t, dig(vol, "secret", "defaultMode")), 0o440, "the key file must not be world-readable")

	cm, ok := m.find("ConfigMap", vs.fullname+"-config")
	require.True(t, ok)
	require.NotContains(t, str(dig(cm, "data", "config.toml")), "private_key")
}

// checkSecurityContexts: every container runs as non-root, read-only, with no
// privilege escalation and no capabilities.
func checkSecurityContexts(t *testing.T, _ valueSet, m manifest) {
	specs := m.podSpecs()
	require.NotEmpty(t, specs)
	for owner, spec := range specs {
		pod, _ := spec["securityContext"].(map[string]any)
		require.Equal(t, false, spec["automountServiceAccountToken"], "%s mounts an API token", owner)
		require.NotEmpty(t, spec["serviceAccountName"], owner)
		for _, c := range containers(spec) {
			sc, _ := c["securityContext"].(map[string]any)
			who := owner + " container " + str(c["name"])
			effective := func(key string) any {
				if v, ok := sc[key]; ok {
					return v
				}
				return pod[key]
			}
			require.Equal(t, true, effective("runAsNonRoot"), "%s: runAsNonRoot", who)
			uid := effective("runAsUser")
			require.NotNil(t, uid, "%s: runAsUser unset", who)
			require.NotZero(t, toInt(t, uid), "%s runs as root", who)
			require.Equal(t, false, sc["allowPrivilegeEscalation"], "%s: allowPrivilegeEscalation", who)
			require.Equal(t, true, sc["readOnlyRootFilesystem"], "%s: readOnlyRootFilesystem", who)
			require.NotEqual(t, true, sc["privileged"], "%s is privileged", who)
			require.Contains(t, list(dig(sc, "capabilities", "drop")), "ALL", "%s keeps capabilities", who)
			require.Empty(t, list(dig(sc, "capabilities", "add")), "%s adds capabilities", who)
		}
	}
}

func checkRelaygwSingleton(t *testing.T, vs valueSet, m manifest) {
	dep, ok := m.deployment("relaygw")
	require.True(t, ok)
	require.Equal(t, 1, toInt(t, dig(dep, "spec", "replicas")))
	require.Equal(t, "Recreate", dig(dep, "spec", "strategy", "type"))
	for _, o := range m {
		if o.kind() == "HorizontalPodAutoscaler" {
			require.NotEqual(t, vs.resourceName("relaygw"), dig(o, "spec", "scaleTargetRef", "name"))
		}
		if o.kind() == "PodDisruptionBudget" {
			require.NotEqual(t, "relaygw", o.component(), "a PDB on a singleton blocks node drains")
		}
	}
}

func checkScaling(t *testing.T, vs valueSet, m manifest) {
	for name, want := range vs.replicas {
		dep, ok := m.deployment(name)
		require.True(t, ok, name)
		require.Equal(t, want, toInt(t, dig(dep, "spec", "replicas")), name)
	}
	hpas := m.ofKind("HorizontalPodAutoscaler")
	esc, hasEsc := m.deployment("escalationsvc")
	if vs.hpa == nil {
		require.Empty(t, hpas)
		return
	}
	require.True(t, hasEsc)
	require.Len(t, hpas, 1)
	hpa := hpas[0]
	require.Equal(t, "escalationsvc", hpa.component())
	require.Equal(t, "apps/v1", dig(hpa, "spec", "scaleTargetRef", "apiVersion"))
	require.Equal(t, "Deployment", dig(hpa, "spec", "scaleTargetRef", "kind"))
	require.Equal(t, esc.name(), dig(hpa, "spec", "scaleTargetRef", "name"), "the HPA must target escalationsvc")
	require.Equal(t, vs.hpa.min, toInt(t, dig(hpa, "spec", "minReplicas")))
	require.Equal(t, vs.hpa.max, toInt(t, dig(hpa, "spec", "maxReplicas")))
	require.NotEmpty(t, list(dig(hpa, "spec", "metrics")))
	_, hasReplicas := dig(esc, "spec").(map[string]any)["replicas"]
	require.False(t, hasReplicas, "an autoscaled Deployment must not set replicas (each upgrade would reset the HPA)")
	c := containers(dig(esc, "spec", "template", "spec").(map[string]any))[0]
	require.NotNil(t, dig(c, "resources", "requests", "cpu"), "utilisation targets need CPU requests")
}

func checkPDBs(t *testing.T, vs valueSet, m manifest) {
	got := map[string]obj{}
	for _, p := range m.ofKind("PodDisruptionBudget") {
		got[p.component()] = p
	}
	for _, name := range vs.enabled() {
		want := name == "escalationsvc" || vs.replicas[name] > 1
		p, has := got[name]
		require.Equal(t, want, has, "PDB of %s", name)
		if !has {
			continue
		}
		dep, _ := m.deployment(name)
		require.Equal(t, dig(dep, "spec", "selector"), dig(p, "spec", "selector"), "PDB of %s selects other pods", name)
	}
}

func checkServicesAndProbes(t *testing.T, vs valueSet, m manifest) {
	for _, c := range components {
		dep, ok := m.deployment(c.name)
		if !ok {
			continue
		}
		spec := dig(dep, "spec", "template", "spec").(map[string]any)
		require.Equal(t, dig(dep, "spec", "selector", "matchLabels"),
			pick(dig(dep, "spec", "template", "metadata", "labels").(map[string]any), dig(dep, "spec", "selector", "matchLabels").(map[string]any)),
			"%s selector does not match its pods", c.name)
		require.Equal(t, false, spec["enableServiceLinks"], "service links would inject SERBERO_*_SERVICE_* variables")
		ctr := containers(spec)[0]
		require.Equal(t, []any{"serve", "--target=" + c.name, "--config=/etc/serbero/config/config.toml"}, ctr["args"])
		ports := map[string]int{}
		for _, p := range list(ctr["ports"]) {
			ports[str(dig(p, "name"))] = toInt(t, dig(p, "containerPort"))
		}
		require.Contains(t, ports, "grpc")
		require.Contains(t, ports, "metrics")
		env := envOf(ctr)
		require.Equal(t, fmt.Sprintf("0.0.0.0:%d", ports["grpc"]), env["SERBERO_GRPC_LISTEN"])
		require.Equal(t, fmt.Sprintf("0.0.0.0:%d", ports["metrics"]), env["SERBERO_METRICS_LISTEN"])

		// Native gRPC probes: liveness on "", readiness on the service's own name.
		for _, probe := range []string{"livenessProbe", "startupProbe"} {
			require.Equal(t, ports["grpc"], toInt(t, dig(ctr, probe, "grpc", "port")), "%s %s", c.name, probe)
			require.Empty(t, str(dig(ctr, probe, "grpc", "service")), "%s %s must check the overall health", c.name, probe)
		}
		require.Equal(t, ports["grpc"], toInt(t, dig(ctr, "readinessProbe", "grpc", "port")))
		require.Equal(t, c.healthService, dig(ctr, "readinessProbe", "grpc", "service"), "%s readiness", c.name)

		// The Service selects exactly this Deployment's pods and exposes both ports by name.
		svc, ok := m.find("Service", vs.resourceName(c.name))
		require.True(t, ok, "Service of %s", c.name)
		require.Equal(t, dig(dep, "spec", "selector", "matchLabels"), dig(svc, "spec", "selector"))
		svcPorts := map[string]any{}
		for _, p := range list(dig(svc, "spec", "ports")) {
			svcPorts[str(dig(p, "name"))] = dig(p, "targetPort")
		}
		require.Equal(t, map[string]any{"grpc": "grpc", "metrics": "metrics"}, svcPorts)

		// Peers: exactly the services it dials, at their Service's gRPC port.
		var peerVars []string
		for k := range env {
			if strings.HasSuffix(k, "_ADDR") {
				peerVars = append(peerVars, k)
			}
		}
		var wantVars []string
		for _, p := range c.peers {
			wantVars = append(wantVars, "SERBERO_"+strings.ToUpper(p)+"_ADDR")
			peerSvc, ok := m.find("Service", vs.resourceName(p))
			require.True(t, ok, "%s dials %s, which has no Service", c.name, p)
			require.Equal(t, fmt.Sprintf("%s:%d", peerSvc.name(), toInt(t, dig(peerSvc, "spec", "ports", 0, "port"))),
				env["SERBERO_"+strings.ToUpper(p)+"_ADDR"])
		}
		require.ElementsMatch(t, wantVars, peerVars, "%s peer addresses", c.name)

		// Pods roll when config.toml changes.
		require.Len(t, str(dig(dep, "spec", "template", "metadata", "annotations", "checksum/config")), 64)
	}
}

func pick(from, keys map[string]any) map[string]any {
	out := map[string]any{}
	for k := range keys {
		if v, ok := from[k]; ok {
			out[k] = v
		}
	}
	return out
}

// checkNetworkPolicies: each component admits gRPC only from the components
// that call it; egress leaves the cluster only from relaygw (relays) and
// mediationsvc (reasoning, when enabled).
func checkNetworkPolicies(t *testing.T, vs valueSet, m manifest) {
	callers := map[string][]string{}
	for _, c := range components {
		if slices.Contains(vs.disabled, c.name) {
			continue
		}
		for _, p := range c.peers {
			callers[p] = append(callers[p], c.name)
		}
	}
	grpcPort := 50051
	for _, name := range vs.enabled() {
		np, ok := m.find("NetworkPolicy", vs.resourceName(name))
		require.True(t, ok, "NetworkPolicy of %s", name)
		dep, _ := m.deployment(name)
		require.Equal(t, dig(dep, "spec", "selector", "matchLabels"), dig(np, "spec", "podSelector", "matchLabels"))
		require.ElementsMatch(t, []any{"Ingress", "Egress"}, list(dig(np, "spec", "policyTypes")))

		var grpcFrom []string
		for _, rule := range list(dig(np, "spec", "ingress")) {
			opensGRPC := len(list(dig(rule, "ports"))) == 0
			for _, p := range list(dig(rule, "ports")) {
				if toInt(t, dig(p, "port")) == grpcPort {
					opensGRPC = true
				}
			}
			if !opensGRPC {
				continue
			}
			if name == "relaygw" {
				// relaygw holds the key: its gRPC port admits Serbero's own pods only.
				require.NotEmpty(t, list(dig(rule, "from")), "relaygw gRPC open to everyone")
			}
			for _, peer := range list(dig(rule, "from")) {
				if name == "relaygw" {
					require.Nil(t, dig(peer, "namespaceSelector"), "relaygw gRPC admits another namespace")
					require.Nil(t, dig(peer, "ipBlock"), "relaygw gRPC admits an IP block")
				}
				if dig(peer, "podSelector") == nil || dig(peer, "namespaceSelector") != nil || dig(peer, "ipBlock") != nil {
					continue // an operator's extraIngress rule (only tested sets use them off relaygw)
				}
				require.Equal(t, release, dig(peer, "podSelector", "matchLabels", "app.kubernetes.io/instance"))
				exprs := list(dig(peer, "podSelector", "matchExpressions"))
				require.Len(t, exprs, 1)
				require.Equal(t, "app.kubernetes.io/component", dig(exprs[0], "key"))
				require.Equal(t, "In", dig(exprs[0], "operator"))
				for _, v := range list(dig(exprs[0], "values")) {
					grpcFrom = append(grpcFrom, str(v))
				}
			}
		}
		// The helm test Pod (component "test") checks every component's health.
		require.ElementsMatch(t, append(slices.Clone(callers[name]), "test"), grpcFrom, "who may call %s", name)

		// Egress on the gRPC port goes exactly to the components it calls.
		var grpcTo []string
		for _, rule := range list(dig(np, "spec", "egress")) {
			for _, p := range list(dig(rule, "ports")) {
				if toInt(t, dig(p, "port")) != grpcPort {
					continue
				}
				for _, peer := range list(dig(rule, "to")) {
					require.Equal(t, release, dig(peer, "podSelector", "matchLabels", "app.kubernetes.io/instance"))
					for _, e := range list(dig(peer, "podSelector", "matchExpressions")) {
						for _, v := range list(dig(e, "values")) {
							grpcTo = append(grpcTo, str(v))
						}
					}
				}
			}
		}
		var peers []string
		for _, c := range components {
			if c.name == name {
				peers = c.peers
			}
		}
		require.ElementsMatch(t, peers, grpcTo, "whom %s may call", name)

		// Only relaygw (relays) and mediationsvc (the reasoning endpoint) may leave the cluster.
		https := false
		for _, rule := range list(dig(np, "spec", "egress")) {
			ports := list(dig(rule, "ports"))
			require.NotEmpty(t, ports, "%s: an egress rule without ports", name)
			for _, p := range ports {
				if toInt(t, dig(p, "port")) == 443 {
					https = true
				}
			}
		}
		wantHTTPS := name == "relaygw" || (name == "mediationsvc" && vs.reasoning)
		require.Equal(t, wantHTTPS, https, "%s egress on 443", name)
	}
	_, hasDBPolicy := m.find("NetworkPolicy", vs.fullname+"-database")
	require.Equal(t, vs.dbPolicy, hasDBPolicy)
}

// checkConfigLoads loads each component's configuration the way `serbero
// serve --target=<component>` does, with the pod's args and environment and
// every file resolved through the pod's volume mounts. It proves the rendered
// config.toml parses (integers stay integers), the secrets land where the
// *_FILE variables point, and only relaygw gets the key.
func checkConfigLoads(t *testing.T, vs valueSet, m manifest) {
	cm, ok := m.find("ConfigMap", vs.fullname+"-config")
	require.True(t, ok)
	configMaps := map[string]map[string]any{cm.name(): dig(cm, "data").(map[string]any)}
	authSecret, authKey := vs.authSecret, vs.authKey
	if authSecret == "" {
		authSecret = vs.fullname + "-auth-token"
	}

	for _, c := range components {
		dep, ok := m.deployment(c.name)
		if !ok {
			continue
		}
		spec := dig(dep, "spec", "template", "spec").(map[string]any)
		ctr := containers(spec)[0]
		env := envOf(ctr)
		var target, configPath string
		for _, a := range list(ctr["args"]) {
			if v, ok := strings.CutPrefix(str(a), "--target="); ok {
				target = v
			}
			if v, ok := strings.CutPrefix(str(a), "--config="); ok {
				configPath = v
			}
		}
		tgt, err := config.ParseTarget(target)
		require.NoError(t, err)
		loaded, err := config.Load(config.LoadOptions{
			Path:     configPath,
			Target:   tgt,
			Getenv:   func(k string) string { return env[k] },
			ReadFile: podFiles(t, spec, ctr, configMaps),
		})
		require.NoError(t, err, "%s would not start with this configuration", c.name)
		require.Empty(t, loaded.Warnings, "%s config warnings", c.name)

		cfg := loaded.Config
		require.Equal(t, fakeSecret(vs.dbSecret, vs.dbKey), cfg.Database.URL.Reveal(), "%s database URL", c.name)
		require.Equal(t, fakeSecret(authSecret, authKey), cfg.Server.AuthToken.Reveal(), "%s token", c.name)
		require.Equal(t, "0.0.0.0:50051", cfg.Server.GRPCListen)
		if c.name == "relaygw" {
			require.Equal(t, fakeSecret(vs.keySecret, vs.keyKey), loaded.PrivateKey.Reveal())
		} else {
			require.False(t, loaded.PrivateKey.IsSet(), "%s loaded the Nostr key", c.name)
		}
		wantReasoning := c.name == "mediationsvc" && vs.reasoning
		require.Equal(t, wantReasoning, cfg.Reasoning.Enabled, "%s reasoning", c.name)
		require.Equal(t, wantReasoning, cfg.Reasoning.APIKey.IsSet(), "%s reasoning key", c.name)
		for _, p := range c.peers {
			addr := map[string]string{
				"relaygw": cfg.Services.Relaygw, "authsvc": cfg.Services.Authsvc, "intakesvc": cfg.Services.Intakesvc,
			}[p]
			require.Equal(t, vs.resourceName(p)+":50051", addr, "%s → %s", c.name, p)
		}

		// Terminating pods get to finish the drain and the graceful stop.
		grace := toInt(t, spec["terminationGracePeriodSeconds"])
		require.Greater(t, grace, int(cfg.Server.DrainSeconds+cfg.Server.ShutdownGraceSeconds), c.name)
	}
}

// fakeSecret is what a test Secret holds: its own name and key, so a test
// can tell which Secret a file came from.
func fakeSecret(name, key string) string { return "secret:" + name + "/" + key }

// volumeFor returns the volume and mount that serve path in container c.
func volumeFor(t *testing.T, spec, c map[string]any, path string) (vol, mount map[string]any) {
	t.Helper()
	best := ""
	for _, mt := range list(c["volumeMounts"]) {
		mp := str(dig(mt, "mountPath"))
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, mount = mp, mt.(map[string]any)
		}
	}
	require.NotNil(t, mount, "no volume mount serves %s", path)
	for _, v := range list(spec["volumes"]) {
		if str(dig(v, "name")) == str(mount["name"]) {
			return v.(map[string]any), mount
		}
	}
	t.Fatalf("volume %s of mount %s does not exist", mount["name"], best)
	return nil, nil
}

// podFiles resolves a path inside the container through its mounts to the
// Secret or ConfigMap item it would hold. Rendered ConfigMaps give their
// data; Secrets and other ConfigMaps give fakeSecret-style markers.
func podFiles(t *testing.T, spec, c map[string]any, configMaps map[string]map[string]any) func(string) ([]byte, error) {
	return func(path string) ([]byte, error) {
		vol, mount := volumeFor(t, spec, c, path)
		rel := strings.TrimPrefix(strings.TrimPrefix(path, str(mount["mountPath"])), "/")
		if sp := str(mount["subPath"]); sp != "" {
			rel = sp
		}
		source, kind := dig(vol, "secret"), "secret"
		name := str(dig(vol, "secret", "secretName"))
		if source == nil {
			source, kind = dig(vol, "configMap"), "configMap"
			name = str(dig(vol, "configMap", "name"))
		}
		if source == nil {
			return nil, fmt.Errorf("%s: volume %s is neither a Secret nor a ConfigMap", path, vol["name"])
		}
		key := rel
		if items := list(dig(source, "items")); len(items) > 0 {
			key = ""
			for _, it := range items {
				if str(dig(it, "path")) == rel {
					key = str(dig(it, "key"))
				}
			}
			if key == "" {
				return nil, fmt.Errorf("%s: %s %s projects no item at %s: %w", path, kind, name, rel, os.ErrNotExist)
			}
		}
		if kind == "configMap" {
			if data, ok := configMaps[name]; ok {
				v, ok := data[key]
				if !ok {
					return nil, fmt.Errorf("%s: ConfigMap %s has no key %s: %w", path, name, key, os.ErrNotExist)
				}
				return []byte(str(v)), nil
			}
		}
		return []byte(fakeSecret(name, key)), nil
	}
}

func checkMigrationJob(t *testing.T, vs valueSet, m manifest) {
	jobs := m.ofKind("Job")
	require.Len(t, jobs, 1)
	job := jobs[0]
	a := job.annotations()
	require.ElementsMatch(t, []string{"pre-install", "pre-upgrade"}, strings.Split(str(a["helm.sh/hook"]), ","))
	require.Contains(t, str(a["helm.sh/hook-delete-policy"]), "before-hook-creation")
	spec := dig(job, "spec", "template", "spec").(map[string]any)
	require.Equal(t, "Never", spec["restartPolicy"])
	ctr := containers(spec)[0]
	require.Equal(t, []any{"migrate", "up"}, ctr["args"])
	dep, _ := m.deployment("relaygw")
	require.Equal(t, dig(containers(dig(dep, "spec", "template", "spec").(map[string]any))[0], "image"), ctr["image"],
		"the Job migrates with the image the services run")
	require.ElementsMatch(t, append([]any{vs.dbSecret}, pullSecrets(spec)...), toAny(secretRefs(spec)),
		"the migration Job reads the database URL and nothing else")
	env := envOf(ctr)
	url, err := podFiles(t, spec, ctr, nil)(env["SERBERO_DATABASE_URL_FILE"])
	require.NoError(t, err)
	require.Equal(t, fakeSecret(vs.dbSecret, vs.dbKey), string(url))

	// Everything a hook pod needs exists before it: hooks run before the
	// release's objects, so its ServiceAccount and NetworkPolicy are hooks
	// with a lower weight.
	jobWeight := str(a["helm.sh/hook-weight"])
	sa := str(spec["serviceAccountName"])
	saObj, ok := m.find("ServiceAccount", sa)
	require.True(t, ok, "the Job's ServiceAccount %s is not rendered", sa)
	require.Contains(t, str(saObj.annotations()["helm.sh/hook"]), "pre-install")
	require.Less(t, atoi(t, str(saObj.annotations()["helm.sh/hook-weight"])), atoi(t, jobWeight))
	np, ok := m.find("NetworkPolicy", job.name())
	require.True(t, ok)
	require.Contains(t, str(np.annotations()["helm.sh/hook"]), "pre-install")
	require.Less(t, atoi(t, str(np.annotations()["helm.sh/hook-weight"])), atoi(t, jobWeight))
	require.Equal(t, dig(job, "spec", "template", "metadata", "labels", "app.kubernetes.io/component"),
		dig(np, "spec", "podSelector", "matchLabels", "app.kubernetes.io/component"))
	require.Empty(t, list(dig(np, "spec", "ingress")), "nothing connects to the migration Job")
}

func pullSecrets(spec map[string]any) []any {
	var out []any
	for _, s := range list(spec["imagePullSecrets"]) {
		out = append(out, dig(s, "name"))
	}
	return out
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	_, err := fmt.Sscanf(s, "%d", &n)
	require.NoError(t, err, "not a number: %q", s)
	return n
}

func checkAuthSecret(t *testing.T, vs valueSet, m manifest) {
	secrets := m.ofKind("Secret")
	if vs.authSecret != "" {
		require.Empty(t, secrets, "an existing token Secret was given; the chart must not create one")
		return
	}
	require.Len(t, secrets, 1, "the chart creates only the token Secret")
	require.Equal(t, vs.fullname+"-auth-token", secrets[0].name())
	require.NotEmpty(t, str(dig(secrets[0], "data", "token")))
}

func checkServiceMonitor(t *testing.T, vs valueSet, m manifest) {
	sms := m.ofKind("ServiceMonitor")
	if !vs.monitor {
		require.Empty(t, sms)
		return
	}
	require.Len(t, sms, 1)
	sel := dig(sms[0], "spec", "selector", "matchLabels").(map[string]any)
	var matched []string
	for _, svc := range m.ofKind("Service") {
		if mapsSubset(sel, svc.labels()) {
			matched = append(matched, svc.component())
		}
	}
	require.ElementsMatch(t, vs.enabled(), matched, "the ServiceMonitor must select every component's Service")
	require.Equal(t, "metrics", dig(sms[0], "spec", "endpoints", 0, "port"))
	require.Equal(t, "/metrics", dig(sms[0], "spec", "endpoints", 0, "path"))
}

func mapsSubset(sub, super map[string]any) bool {
	for k, v := range sub {
		if super[k] != v {
			return false
		}
	}
	return true
}

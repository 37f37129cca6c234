//go:build chart

package charttest

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// updateRules rewrites deploy/monitoring/serbero-rules.yaml from the chart
// (make rules-generate).
var updateRules = flag.Bool("update-rules", false, "rewrite deploy/monitoring/serbero-rules.yaml from the chart's rules")

var (
	rulesFile     = filepath.Join(repoRoot, "deploy", "monitoring", "serbero-rules.yaml")
	dashboardFile = filepath.Join(repoRoot, "deploy", "monitoring", "serbero-dashboard.json")
)

// rulesFileHeader heads the generated plain rules file.
const rulesFileHeader = `# Serbero's Prometheus alert rules, for a Prometheus without the Prometheus Operator (rule_files:).
# Generated from the Helm chart (deploy/k8s/templates/_alerts.tpl) with its default thresholds by
# make rules-generate; do not edit: change the template and regenerate. The chart's PrometheusRule
# (prometheusRule.enabled) holds the same rules. Each alert: docs/deploy.md#alerts.
# SerberoTargetDown and SerberoRelaygwMissing select job=~"serbero-.*": name your scrape jobs so.
`

// renderedRules renders the PrometheusRule with args after the minimal
// values and prometheusRule.enabled, and returns it and its spec's text
// (the "groups:" document, as a plain rule file holds it).
func renderedRules(t *testing.T, args ...string) (obj, string) {
	t.Helper()
	full := append(append(append([]string{}, minimal...), "--set", "prometheusRule.enabled=true",
		"--show-only", "templates/prometheusrule.yaml"), args...)
	text, err := helmTemplate(t, full...)
	require.NoError(t, err)
	m := parseManifest(t, text)
	require.Len(t, m, 1)
	_, spec, ok := strings.Cut(text, "\nspec:\n")
	require.True(t, ok, "spec is the PrometheusRule's last key")
	var b strings.Builder
	for line := range strings.Lines(spec) {
		require.True(t, strings.HasPrefix(line, "  ") || strings.TrimSpace(line) == "", "spec line %q", line)
		b.WriteString(strings.TrimPrefix(line, "  "))
	}
	return m[0], b.String()
}

// alertRules returns every rule of a PrometheusRule or rule file's groups.
func alertRules(t *testing.T, groups any) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, g := range list(groups) {
		for _, r := range list(dig(g, "rules")) {
			out = append(out, r.(map[string]any))
		}
	}
	require.NotEmpty(t, out)
	return out
}

// TestPlainRulesFileIsTheChartsRules: deploy/monitoring/serbero-rules.yaml
// is the chart's PrometheusRule with the default values, byte for byte
// after its header; `make rules-generate` rewrites it.
func TestPlainRulesFileIsTheChartsRules(t *testing.T) {
	t.Parallel()
	_, spec := renderedRules(t)
	want := rulesFileHeader + spec
	if *updateRules {
		require.NoError(t, os.WriteFile(rulesFile, []byte(want), 0o644))
	}
	got, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	require.Equal(t, want, string(got), "deploy/monitoring/serbero-rules.yaml differs from the chart's rules: run make rules-generate")
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(got, &doc))
	require.Equal(t, []string{"groups"}, keys(doc), "a rule file holds only groups")
}

// TestPrometheusRuleOptIn: no PrometheusRule unless enabled; enabled, every
// alert has a severity, the extra labels, a summary, a description and a
// runbook link to its section of docs/deploy.md, and the thresholds reach
// the expressions.
func TestPrometheusRuleOptIn(t *testing.T) {
	t.Parallel()
	require.Empty(t, render(t, minimal...).ofKind("PrometheusRule"), "opt-in")

	pr, _ := renderedRules(t, "--set", "prometheusRule.labels.release=kps", "--set", "prometheusRule.alertLabels.team=ops")
	require.Equal(t, "PrometheusRule", pr.kind())
	require.Equal(t, "monitoring.coreos.com/v1", str(pr["apiVersion"]))
	require.Equal(t, release, pr.name())
	require.Equal(t, namespace, str(dig(pr, "metadata", "namespace")))
	require.Equal(t, "kps", pr.labels()["release"])
	require.Equal(t, "serbero", pr.labels()["app.kubernetes.io/part-of"])

	docs, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deploy.md"))
	require.NoError(t, err)
	var runbooks []string // the #### headings of docs/deploy.md
	for line := range strings.Lines(string(docs)) {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "#### "); ok {
			runbooks = append(runbooks, h)
		}
	}
	var names []string
	for _, r := range alertRules(t, dig(pr, "spec", "groups")) {
		name := str(r["alert"])
		names = append(names, name)
		labels := r["labels"].(map[string]any)
		require.Contains(t, []any{"warning", "critical"}, labels["severity"], name)
		require.Equal(t, "ops", labels["team"], name)
		ann := r["annotations"].(map[string]any)
		require.NotEmpty(t, ann["summary"], name)
		require.NotEmpty(t, ann["description"], name)
		require.Equal(t, "https://github.com/serbero/serbero/blob/main/docs/deploy.md#"+strings.ToLower(name), ann["runbook_url"], name)
		require.Contains(t, runbooks, name, "docs/deploy.md has no runbook section (#### %s)", name)
		require.NotEmpty(t, r["expr"], name)
	}
	require.Len(t, names, len(slices.Compact(slices.Sorted(slices.Values(names)))), "alert names are unique")
	for _, want := range []string{
		"SerberoRelayDisconnected", "SerberoNoRelayConnected", "SerberoMostroDisputeStreamSilent", "SerberoDMDeliveryFailing",
		"SerberoSolverNotificationsFailing", "SerberoEscalationDispatchFailing", "SerberoHandoffQueueStale",
		"SerberoSolverNotAuthorized", "SerberoSolverAuthorizationTerminated", "SerberoTargetDown", "SerberoNotReady",
	} {
		require.Contains(t, names, want)
	}

	rule := func(pr obj, name string) map[string]any {
		for _, r := range alertRules(t, dig(pr, "spec", "groups")) {
			if r["alert"] == name {
				return r
			}
		}
		t.Fatalf("no alert %s", name)
		return nil
	}
	t.Run("Thresholds", func(t *testing.T) {
		t.Parallel()
		def, _ := renderedRules(t)
		require.Contains(t, rule(def, "SerberoMostroDisputeStreamSilent")["expr"], "> 7200", "120 minutes by default, as mostro-watchdog")
		require.Contains(t, rule(def, "SerberoTargetDown")["expr"], `up{job=~"serbero-.*"}`)
		pr, _ := renderedRules(t,
			"--set", "prometheusRule.thresholds.disputeSilenceMinutes=30",
			"--set", "prometheusRule.thresholds.handoffQueueAgeMinutes=3",
			"--set-json", "prometheusRule.thresholds.dmFailureRatio=0.5",
			"--set", "prometheusRule.thresholds.dmFailureWindow=1h",
			"--set", "prometheusRule.thresholds.notAuthorizedFor=6h",
			"--set", "prometheusRule.jobRegex=mostro-serbero-.*")
		require.Contains(t, rule(pr, "SerberoMostroDisputeStreamSilent")["expr"], "> 1800")
		require.Contains(t, rule(pr, "SerberoMostroDisputeStreamSilent")["annotations"].(map[string]any)["summary"], "30 minutes")
		require.Contains(t, rule(pr, "SerberoHandoffQueueStale")["expr"], "> 180")
		require.Contains(t, rule(pr, "SerberoDMDeliveryFailing")["expr"], "> 0.5")
		require.Contains(t, rule(pr, "SerberoDMDeliveryFailing")["expr"], "[1h]")
		require.Contains(t, rule(pr, "SerberoDMDeliveryFailing")["annotations"].(map[string]any)["description"], "threshold 50%")
		require.Equal(t, "6h", rule(pr, "SerberoSolverNotAuthorized")["for"])
		require.Contains(t, rule(pr, "SerberoTargetDown")["expr"], `up{job=~"mostro-serbero-.*"}`)
	})
	t.Run("WrongThresholdsFail", func(t *testing.T) {
		t.Parallel()
		for _, tc := range [][]string{
			{"prometheusRule.thresholds.dmFailureRatio=0", "/prometheusRule/thresholds/dmFailureRatio"},
			{"prometheusRule.thresholds.dmFailureRatio=2", "/prometheusRule/thresholds/dmFailureRatio"},
			{"prometheusRule.thresholds.downFor=five", "/prometheusRule/thresholds/downFor"},
			{"prometheusRule.thresholds.disputeSilenceMinutes=0", "/prometheusRule/thresholds/disputeSilenceMinutes"},
			{"prometheusRule.thresholds.silence=1", "'silence' not allowed"},
		} {
			_, err := helmTemplate(t, append(append([]string{}, minimal...), "--set", "prometheusRule.enabled=true", "--set", tc[0])...)
			require.Error(t, err, tc[0])
			require.Contains(t, err.Error(), tc[1])
		}
	})
}

// TestGrafanaDashboardOptIn: no ConfigMap unless enabled; enabled, one
// ConfigMap with the sidecar's label holding deploy/monitoring's dashboard
// byte for byte, JSON that parses into a dashboard.
func TestGrafanaDashboardOptIn(t *testing.T) {
	t.Parallel()
	name := release + "-grafana-dashboard"
	_, ok := render(t, minimal...).find("ConfigMap", name)
	require.False(t, ok, "opt-in")

	want, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	bundled, err := os.ReadFile(filepath.Join(chartDir, "files", "grafana", "serbero-dashboard.json"))
	require.NoError(t, err)
	require.Equal(t, string(want), string(bundled), "deploy/k8s/files/grafana/serbero-dashboard.json is deploy/monitoring's (make rules-generate copies it)")

	m := render(t, append(append([]string{}, minimal...), "--set", "grafanaDashboard.enabled=true",
		"--set", "grafanaDashboard.sidecarLabel=dashboards", "--set", "grafanaDashboard.sidecarLabelValue=serbero",
		"--set", "grafanaDashboard.namespace=monitoring", "--set", "grafanaDashboard.annotations.grafana_folder=Serbero")...)
	cm, ok := m.find("ConfigMap", name)
	require.True(t, ok)
	require.Equal(t, "serbero", cm.labels()["dashboards"], "the sidecar's label")
	require.Equal(t, "monitoring", str(dig(cm, "metadata", "namespace")))
	require.Equal(t, "Serbero", cm.annotations()["grafana_folder"])
	data := dig(cm, "data").(map[string]any)
	require.Len(t, data, 1)
	require.Equal(t, string(want), str(data["serbero-dashboard.json"]), "the dashboard, byte for byte")

	m = render(t, append(append([]string{}, minimal...), "--set", "grafanaDashboard.enabled=true")...)
	cm, ok = m.find("ConfigMap", name)
	require.True(t, ok)
	require.Equal(t, "1", cm.labels()["grafana_dashboard"], "kube-prometheus-stack's sidecar label by default")
	require.Equal(t, namespace, str(dig(cm, "metadata", "namespace")))

	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal([]byte(str(data["serbero-dashboard.json"])), &dash))
	require.Equal(t, "Serbero", dash.Title)
	require.NotEmpty(t, dash.UID)
	rows := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			rows++
			continue
		}
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, p.Title)
		}
	}
	require.GreaterOrEqual(t, rows, 6, "a row per service and one for gRPC and Postgres")
}

// metricName finds the metric names an expression uses (serbero_* and the
// gRPC server metrics).
var metricName = regexp.MustCompile(`\b(serbero_[a-z0-9_]+|grpc_server_[a-z_]+)\b`)

// TestMonitoringUsesOnlyMetricsThatExist: every metric the rules and the
// dashboard query is one the code registers: its full name is a string in a
// non-test Go file of pkg/ or services/, or one file builds it from two
// strings ("serbero_db_pool_" + "acquired_conns"; Namespace "serbero",
// Subsystem "<service>" and Name "<rest>" in that service's code). A renamed
// metric fails here, not as a silent panel or an alert that cannot fire.
func TestMonitoringUsesOnlyMetricsThatExist(t *testing.T) {
	t.Parallel()
	files := map[string]string{}
	for _, dir := range []string{"pkg", "services"} {
		require.NoError(t, filepath.WalkDir(filepath.Join(repoRoot, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			files[filepath.ToSlash(p)] = string(b)
			return err
		}))
	}
	registered := func(name string) bool {
		for path, src := range files {
			if strings.Contains(src, `"`+name+`"`) {
				return true
			}
			for i := range len(name) {
				if name[i] != '_' {
					continue
				}
				prefix, rest := name[:i], name[i+1:]
				if !strings.Contains(src, `"`+rest+`"`) {
					continue
				}
				if strings.Contains(src, `"`+prefix+`_"`) {
					return true
				}
				svc := strings.TrimPrefix(prefix, "serbero_")
				if strings.Contains(path, "/services/"+svc+"/") && strings.Contains(src, "Subsystem") &&
					strings.Contains(src, `"serbero"`) && strings.Contains(src, `"`+svc+`"`) {
					return true
				}
			}
		}
		return false
	}
	rules, err := os.ReadFile(rulesFile)
	require.NoError(t, err)
	dash, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	used := map[string]bool{}
	for _, n := range metricName.FindAllString(string(rules)+string(dash), -1) {
		used[n] = true
	}
	require.Greater(t, len(used), 30)
	for n := range used {
		if strings.HasPrefix(n, "grpc_server_") {
			// go-grpc-middleware's server metrics (pkg/grpcserver).
			require.Contains(t, []string{"grpc_server_handled_total", "grpc_server_handling_seconds_bucket"}, n)
			continue
		}
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(n, "_seconds"+suffix) {
				base = strings.TrimSuffix(n, suffix)
			}
		}
		require.True(t, registered(base), "metric %s is registered nowhere in pkg/ or services/", n)
	}
	require.False(t, registered("serbero_relaygw_no_such_metric"), "the check can fail")
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

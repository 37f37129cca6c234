//go:build chart

package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
)

// minimal is the smallest valid install (the defaults value set).
var minimal = []string{"-f", filepath.Join(chartDir, "ci", "default-values.yaml")}

// TestWrongValuesFail: a mistake fails at install time with a message that
// names it, from values.schema.json or from the chart's cross-value checks.
func TestWrongValuesFail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"relaygw is a singleton", []string{"--set", "relaygw.replicas=2"}, "/relaygw/replicas"},
		{"relaygw cannot autoscale", []string{"--set", "relaygw.autoscaling.enabled=true"}, "'autoscaling' not allowed"},
		{"relaygw admits only Serbero", []string{"--set", "relaygw.networkPolicy.extraIngress[0].ports[0].port=50051"}, "'extraIngress' not allowed"},
		{"no key without its Secret", []string{"--set", "relaygw.privateKey.existingSecret="}, "/relaygw/privateKey/existingSecret"},
		{"no key in the config map", []string{"--set", "config.serbero.private_key=deadbeef"}, "'private_key' not allowed"},
		{"no database URL in the config map", []string{"--set", "config.database.url=postgres://x"}, "'url' not allowed"},
		{"no token in the config map", []string{"--set", "config.server.auth_token=x"}, "'auth_token' not allowed"},
		{"listen addresses belong to the chart", []string{"--set", "config.server.grpc_listen=0.0.0.0:1"}, "'grpc_listen' not allowed"},
		{"peer addresses belong to the chart", []string{"--set", "config.services.relaygw=x:1"}, "'services' not allowed"},
		{"reasoning is enabled per component", []string{"--set", "config.reasoning.enabled=true"}, "'enabled' not allowed"},
		{"database Secret required", []string{"--set", "database.existingSecret="}, "/database/existingSecret"},
		{"mostro pubkey required", []string{"--set", "config.mostro.pubkey="}, "/config/mostro/pubkey"},
		{"mostro pubkey is a key", []string{"--set", "config.mostro.pubkey=not-a-key"}, "/config/mostro/pubkey"},
		{"relay URL is a websocket", []string{"--set", "config.relays[0].url=https://relay.example"}, "/config/relays/0/url"},
		{"solver permission", []string{"--set", "config.solvers[0].pubkey=ab", "--set", "config.solvers[0].permission=admin"}, "/config/solvers/0/permission"},
		{"config typo", []string{"--set", "config.escalation.enable=true"}, "'enable' not allowed"},
		{"integers are integers", []string{"--set", "config.timeouts.renotification_seconds=soon"}, "/config/timeouts/renotification_seconds"},
		{"gift-wrap lookback floor", []string{"--set", "config.relaygw.giftwrap_lookback_seconds=3600"}, "/config/relaygw/giftwrap_lookback_seconds"},
		{"backfill is not negative", []string{"--set", "config.relaygw.dispute_backfill_seconds=-1"}, "/config/relaygw/dispute_backfill_seconds"},
		{"retention is not negative", []string{"--set", "config.relaygw.retention_days=-1"}, "/config/relaygw/retention_days"},
		{"retention runs are paced", []string{"--set", "config.relaygw.retention_interval_seconds=0"}, "/config/relaygw/retention_interval_seconds"},
		{"intake retention is not negative", []string{"--set", "config.intakesvc.retention_days=-1"}, "/config/intakesvc/retention_days"},
		{"intake retention runs are paced", []string{"--set", "config.intakesvc.retention_interval_seconds=0"}, "/config/intakesvc/retention_interval_seconds"},
		{"replicas are numbers", []string{"--set", "escalationsvc.replicas=two"}, "/escalationsvc/replicas"},
		{"probe action belongs to the chart", []string{"--set", "defaults.livenessProbe.httpGet.port=80"}, "'httpGet' not allowed"},
		{"unknown top-level key", []string{"--set", "replicaCount=3"}, "'replicaCount' not allowed"},
		{"reasoning needs its Secret (schema)", []string{"--set", "mediationsvc.reasoning.enabled=true"}, "/mediationsvc/reasoning/existingSecret"},
		{"mediation needs mediationsvc", []string{"--set", "mediationsvc.enabled=false", "--set", "config.mediation.enabled=true"}, "mediationsvc.enabled is false"},
		{"escalation needs escalationsvc", []string{"--set", "escalationsvc.enabled=false", "--set", "config.escalation.enabled=true"}, "escalationsvc.enabled is false"},
		{"mediationsvc needs intakesvc", []string{"--set", "intakesvc.enabled=false"}, "mediationsvc.enabled is true but it calls intakesvc"},
		{"everything needs relaygw", []string{"--set", "relaygw.enabled=false"}, "calls relaygw, which is disabled"},
		{"HPA bounds", []string{"--set", "escalationsvc.autoscaling.enabled=true", "--set", "escalationsvc.autoscaling.minReplicas=6", "--set", "escalationsvc.autoscaling.maxReplicas=5"}, "minReplicas (6) is above maxReplicas (5)"},
		{"grace covers drain", []string{"--set", "defaults.terminationGracePeriodSeconds=15"}, "must exceed config.server.drain_seconds + shutdown_grace_seconds (15)"},
		{"database policy needs a selector", []string{"--set", "networkPolicy.database.ingress.enabled=true"}, "networkPolicy.database.ingress.podSelector is required"},
		{"existing service account needs a name", []string{"--set", "serviceAccount.create=false"}, "serviceAccount.name is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := helmTemplate(t, append(append([]string{}, minimal...), tc.args...)...)
			require.Error(t, err, "helm accepted %v", tc.args)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestRightValuesPass guards the cases above against passing for the wrong
// reason: the nearest valid values render.
func TestRightValuesPass(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--set", "relaygw.replicas=1"},
		{"--set", "config.mostro.pubkey=npub1stagewtcks78nvs4vkzm4skqzytk5gwj46kkm8mu2awqqklgswgqfvtamr"},
		{"--set", "config.solvers[0].pubkey=ab", "--set", "config.solvers[0].permission=READ-write"},
		{"--set", "mediationsvc.reasoning.enabled=true", "--set", "mediationsvc.reasoning.existingSecret=llm"},
		{"--set", "mediationsvc.enabled=false"},
		{"--set", "config.escalation.enabled=true"},
		{"--set", "defaults.terminationGracePeriodSeconds=16"},
		{"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=serbero-sa"},
		{"--set", "config.relays[0].url=ws://relay.internal:7777"},
		{"--set", "config.relaygw.dispute_backfill_seconds=86400", "--set", "config.relaygw.retention_days=30", "--set", "config.relaygw.retention_interval_seconds=600"},
		{"--set", "config.intakesvc.retention_days=0", "--set", "config.intakesvc.retention_interval_seconds=600"},
		{"--set", "migrations.enabled=false", "--set", "networkPolicy.enabled=false"},
	} {
		_, err := helmTemplate(t, append(append([]string{}, minimal...), args...)...)
		require.NoError(t, err, "%v", args)
	}
}

// TestConfigChecksum: pods roll when config.toml changes, and only then.
func TestConfigChecksum(t *testing.T) {
	t.Parallel()
	sum := func(args ...string) map[string]string {
		out := map[string]string{}
		for _, d := range render(t, append(append([]string{}, minimal...), args...)...).ofKind("Deployment") {
			out[d.component()] = str(dig(d, "spec", "template", "metadata", "annotations", "checksum/config"))
		}
		return out
	}
	base := sum()
	require.Len(t, base, 5)
	for name, s := range base {
		require.Len(t, s, 64, name)
	}
	changed := sum("--set", "config.serbero.log_level=debug")
	unrelated := sum("--set", "intakesvc.replicas=3")
	for name := range base {
		require.NotEqual(t, base[name], changed[name], "%s does not roll on a config change", name)
		require.Equal(t, base[name], unrelated[name], "%s rolls without a config change", name)
	}
}

// chartOwned are the pkg/config keys the values schema deliberately refuses
// in `config`, with who provides them instead.
var chartOwned = map[string]string{
	"database.url":           "database.existingSecret (file)",
	"server.auth_token":      "auth.* (file)",
	"server.grpc_listen":     "ports.grpc (env)",
	"server.metrics_listen":  "ports.metrics (env)",
	"services.authsvc":       "the chart (env, from the component's Service)",
	"services.escalationsvc": "the chart (env)",
	"services.intakesvc":     "the chart (env)",
	"services.mediationsvc":  "the chart (env)",
	"services.relaygw":       "the chart (env)",
	"reasoning.enabled":      "mediationsvc.reasoning.enabled (env, mediationsvc only)",
}

// TestSchemaKnowsEveryConfigKey keeps values.schema.json's `config` in step
// with pkg/config: every key the binary reads is accepted (or owned by the
// chart), and the schema accepts nothing the binary does not read.
func TestSchemaKnowsEveryConfigKey(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	cfgSchema := dig(schema, "properties", "config", "properties").(map[string]any)

	var schemaKeys []string
	for section, s := range cfgSchema {
		props, _ := dig(s, "properties").(map[string]any)
		if props == nil {
			props, _ = dig(s, "items", "properties").(map[string]any)
		}
		require.NotNil(t, props, "config.%s has no properties in the schema", section)
		for key := range props {
			schemaKeys = append(schemaKeys, section+"."+key)
		}
	}

	var binaryKeys []string
	ct := reflect.TypeFor[config.Config]()
	for i := range ct.NumField() {
		section := tomlName(ct.Field(i))
		st := ct.Field(i).Type
		if st.Kind() == reflect.Slice {
			st = st.Elem()
		}
		for j := range st.NumField() {
			if key := tomlName(st.Field(j)); key != "" {
				binaryKeys = append(binaryKeys, section+"."+key)
			}
		}
	}
	var want []string
	for _, k := range binaryKeys {
		if _, owned := chartOwned[k]; !owned {
			want = append(want, k)
		}
	}
	sort.Strings(want)
	sort.Strings(schemaKeys)
	require.Equal(t, want, schemaKeys, "values.schema.json config keys differ from pkg/config (minus chartOwned)")
	for k := range chartOwned {
		require.Contains(t, binaryKeys, k, "chartOwned lists %s, which pkg/config no longer has", k)
	}
}

func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

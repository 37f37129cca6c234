package metrics_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/metrics"
)

func TestBuildInfoHasLabels(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	require.NoError(t, metrics.RegisterBuildInfo(reg, "v1.2.3"))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	require.Len(t, mfs, 1)
	require.Equal(t, "serbero_build_info", mfs[0].GetName())
	m := mfs[0].GetMetric()[0]
	require.Equal(t, 1.0, m.GetGauge().GetValue())
	labels := map[string]string{}
	for _, l := range m.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	require.Equal(t, "v1.2.3", labels["version"])
	require.NotEmpty(t, labels["revision"])
	require.True(t, strings.HasPrefix(labels["goversion"], "go"), labels["goversion"])
}

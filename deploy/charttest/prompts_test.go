//go:build chart

package charttest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

var promptFiles = []string{
	"phase3-system.md", "phase3-classification.md", "phase3-escalation-policy.md",
	"phase3-mediation-style.md", "phase3-message-templates.md",
}

// promptsVolume returns the ConfigMap mediationsvc mounts at
// /etc/serbero/prompts ("" when none), its prompt env and the pod
// annotations.
func promptsVolume(t *testing.T, m manifest) (configMap string, env map[string]string, annotations map[string]any) {
	t.Helper()
	dep, ok := m.deployment("mediationsvc")
	require.True(t, ok)
	spec := dig(dep, "spec", "template", "spec").(map[string]any)
	ctr := containers(spec)[0]
	annotations, _ = dig(dep, "spec", "template", "metadata", "annotations").(map[string]any)
	var volume string
	for _, vm := range list(ctr["volumeMounts"]) {
		if str(dig(vm, "mountPath")) == "/etc/serbero/prompts" {
			volume = str(dig(vm, "name"))
		}
	}
	for _, v := range list(spec["volumes"]) {
		if volume != "" && str(dig(v, "name")) == volume {
			configMap = str(dig(v, "configMap", "name"))
		}
	}
	return configMap, envOf(ctr), annotations
}

func TestPromptBundleConfigMap(t *testing.T) {
	t.Parallel()
	values := filepath.Join(chartDir, "ci", "default-values.yaml")

	t.Run("BundledByDefault", func(t *testing.T) {
		t.Parallel()
		m := render(t, "-f", values)
		cm, ok := m.find("ConfigMap", release+"-prompts")
		require.True(t, ok, "the chart ships the bundle")
		data := dig(cm, "data").(map[string]any)
		require.Len(t, data, 5)
		for _, f := range promptFiles {
			want, err := os.ReadFile(filepath.Join(repoRoot, "prompts", f))
			require.NoError(t, err)
			require.Equal(t, string(want), str(data[f]), "%s is the repository's, byte for byte", f)
		}
		name, env, ann := promptsVolume(t, m)
		require.Equal(t, release+"-prompts", name)
		require.Equal(t, "/etc/serbero/prompts/phase3-system.md", env["SERBERO_PROMPTS_SYSTEM_INSTRUCTIONS_PATH"])
		require.Equal(t, "/etc/serbero/prompts/phase3-message-templates.md", env["SERBERO_PROMPTS_MESSAGE_TEMPLATES_PATH"])
		require.NotEmpty(t, ann["checksum/prompts"])

		// Replacing one file changes it alone, and rolls the pods.
		m2 := render(t, "-f", values, "--set-string", `mediationsvc.prompts.files.phase3-system\.md=You are a test.`)
		cm2, _ := m2.find("ConfigMap", release+"-prompts")
		data2 := dig(cm2, "data").(map[string]any)
		require.Equal(t, "You are a test.", str(data2["phase3-system.md"]))
		require.Equal(t, data["phase3-classification.md"], data2["phase3-classification.md"])
		_, _, ann2 := promptsVolume(t, m2)
		require.NotEqual(t, ann["checksum/prompts"], ann2["checksum/prompts"])
	})
	t.Run("ExistingConfigMap", func(t *testing.T) {
		t.Parallel()
		m := render(t, "-f", values, "--set", "mediationsvc.prompts.existingConfigMap=ops-prompts")
		_, ok := m.find("ConfigMap", release+"-prompts")
		require.False(t, ok)
		name, env, ann := promptsVolume(t, m)
		require.Equal(t, "ops-prompts", name)
		require.Equal(t, "/etc/serbero/prompts/phase3-system.md", env["SERBERO_PROMPTS_SYSTEM_INSTRUCTIONS_PATH"])
		require.Nil(t, ann["checksum/prompts"])
	})
	t.Run("NotBundled", func(t *testing.T) {
		t.Parallel()
		m := render(t, "-f", values, "--set", "mediationsvc.prompts.bundled=false")
		_, ok := m.find("ConfigMap", release+"-prompts")
		require.False(t, ok)
		name, env, _ := promptsVolume(t, m)
		require.Empty(t, name)
		require.Empty(t, env["SERBERO_PROMPTS_SYSTEM_INSTRUCTIONS_PATH"], "the [prompts] paths of config apply")
	})
	t.Run("UnknownFileRefused", func(t *testing.T) {
		t.Parallel()
		_, err := helmTemplate(t, "-f", values, "--set-string", `mediationsvc.prompts.files.phase3-other\.md=x`)
		require.Error(t, err, "the schema names the five files")
	})
}

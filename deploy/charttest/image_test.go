//go:build chart

package charttest

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// dockerfile returns the Dockerfile's instructions, continuation lines joined
// and comments dropped.
func dockerfile(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	require.NoError(t, err)
	var out []string
	cur := ""
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur += strings.TrimSuffix(trimmed, "\\") + " "
			continue
		}
		cur += trimmed
		if cur != "" {
			out = append(out, strings.Join(strings.Fields(cur), " "))
		}
		cur = ""
	}
	return out
}

// TestDockerfileBuildsWhatMakeBuildBuilds: the image's binary is built by the
// same command as `make build` (static, CGO_ENABLED=0, -trimpath, stripped,
// version stamped); only GOOS/GOARCH are added, for cross-builds.
func TestDockerfileBuildsWhatMakeBuildBuilds(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("make", "-s", "-C", repoRoot, "-n", "build", "VERSION=@VERSION@", "BIN=/out").CombinedOutput()
	require.NoError(t, err, string(out))
	makeCmd := strings.ReplaceAll(strings.TrimSpace(string(out)), "@VERSION@", "${VERSION}")
	require.Contains(t, makeCmd, "CGO_ENABLED=0 go build")

	var run string
	for _, ins := range dockerfile(t) {
		if strings.HasPrefix(ins, "RUN ") && strings.Contains(ins, "go build") {
			require.Empty(t, run, "more than one RUN builds Go")
			run = ins
		}
	}
	require.NotEmpty(t, run, "no RUN go build in the Dockerfile")
	i := strings.Index(run, "CGO_ENABLED=0 go build")
	require.GreaterOrEqual(t, i, 0, "the Dockerfile's go build is not CGO_ENABLED=0: %s", run)
	require.Equal(t, makeCmd, run[i:], "the Dockerfile's build command differs from `make build`")
	prefix := regexp.MustCompile(`--mount=\S+`).ReplaceAllString(strings.TrimPrefix(run[:i], "RUN "), "")
	require.ElementsMatch(t, []string{"GOOS=${TARGETOS}", "GOARCH=${TARGETARCH}"}, strings.Fields(prefix),
		"only the target platform may be added to make build's environment")
}

// TestImageIsNonRootDistroless: the final stage is a distroless static (or
// scratch) image that runs the binary as uid 65532.
func TestImageIsNonRootDistroless(t *testing.T) {
	t.Parallel()
	ins := dockerfile(t)
	var stages []string
	last := 0
	for i, in := range ins {
		if strings.HasPrefix(in, "FROM ") {
			stages = append(stages, in)
			last = i
		}
	}
	require.GreaterOrEqual(t, len(stages), 2, "a multi-stage build")
	require.Regexp(t, `^FROM .*golang:1\.26\S* AS build$`, stages[0])
	final := ins[last:]
	require.Regexp(t, `^FROM (gcr\.io/distroless/static\S*:nonroot|scratch)$`, final[0])
	require.Contains(t, final, "COPY --from=build /out/serbero /serbero")
	require.Contains(t, final, "USER 65532:65532")
	require.Contains(t, final, `ENTRYPOINT ["/serbero"]`)
	for _, in := range final {
		require.False(t, strings.HasPrefix(in, "RUN "), "the final stage has no shell to RUN: %s", in)
	}

	// The build context leaves out the git history, the local dev database
	// (.data: a Postgres cluster and dev keys) and build output.
	ignore, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	require.NoError(t, err)
	lines := strings.Split(string(ignore), "\n")
	for _, want := range []string{".git", ".data", "bin", "config.toml"} {
		require.Contains(t, lines, want, ".dockerignore must exclude %s", want)
	}
}

// TestMakeBuildIsStatic builds bin/serbero's twin with `make build` and checks
// it is a static, cgo-free, trimpath binary: the file the image ships.
func TestMakeBuildIsStatic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out, err := exec.Command("make", "-s", "-C", repoRoot, "build", "BIN="+dir, "VERSION=chart-test").CombinedOutput()
	require.NoError(t, err, string(out))
	bin := filepath.Join(dir, "serbero")

	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "dynamically linked: it has an ELF interpreter")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs, "it needs shared libraries")
	require.Nil(t, f.Section(".symtab"), "not stripped (-s -w)")

	info, err := buildinfo.ReadFile(bin)
	require.NoError(t, err)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	require.Equal(t, "0", settings["CGO_ENABLED"])
	require.Equal(t, "true", settings["-trimpath"])
	// -trimpath keeps -ldflags out of the build info; the stamped version shows it was applied.
	v, err := exec.Command(bin, "version").Output()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(v), "serbero chart-test "), string(v))
}

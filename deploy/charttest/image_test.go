//go:build chart

package charttest

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// finalStageProblems returns what is wrong with a Dockerfile's stages for
// Serbero's image: a Go 1.26 builder, then a distroless static (or scratch)
// final stage, either pinned by tag or by digest, that copies only the
// binary, runs nothing, is non-root 65532 and carries the OCI labels;
// TARGETOS/TARGETARCH declared without defaults (a default would override
// what BuildKit sets per platform).
func finalStageProblems(ins []string) []string {
	var problems []string
	var stages []int
	for i, in := range ins {
		if strings.HasPrefix(in, "FROM ") {
			stages = append(stages, i)
		}
	}
	if len(stages) < 2 {
		return []string{"not a multi-stage build"}
	}
	digest := `(@sha256:[0-9a-f]{64})?`
	if !regexp.MustCompile(`^FROM (--platform=\$BUILDPLATFORM )?\S*golang:1\.26[^@\s]*` + digest + ` AS build$`).MatchString(ins[stages[0]]) {
		problems = append(problems, "the first stage is not a golang:1.26 builder: "+ins[stages[0]])
	}
	for _, in := range ins[:stages[len(stages)-1]] {
		if regexp.MustCompile(`^ARG TARGET(OS|ARCH)=`).MatchString(in) {
			problems = append(problems, "the target platform must not default: "+in)
		}
	}
	for _, arg := range []string{"ARG TARGETOS", "ARG TARGETARCH"} {
		if !slices.Contains(ins[:stages[len(stages)-1]], arg) {
			problems = append(problems, "the build stage must declare "+arg)
		}
	}
	final := ins[stages[len(stages)-1]:]
	if !regexp.MustCompile(`^FROM (gcr\.io/distroless/static[^@\s]*:nonroot` + digest + `|scratch)$`).MatchString(final[0]) {
		problems = append(problems, "the final stage is not distroless static nonroot: "+final[0])
	}
	for _, want := range []string{"COPY --from=build /out/serbero /serbero", "USER 65532:65532", `ENTRYPOINT ["/serbero"]`} {
		if !slices.Contains(final, want) {
			problems = append(problems, "the final stage lacks "+want)
		}
	}
	labels := ""
	for _, in := range final {
		if strings.HasPrefix(in, "RUN ") || strings.HasPrefix(in, "ADD ") {
			problems = append(problems, "the final stage has no shell to run: "+in)
		}
		if strings.HasPrefix(in, "COPY ") && in != "COPY --from=build /out/serbero /serbero" {
			problems = append(problems, "the final stage copies only the binary: "+in)
		}
		if strings.HasPrefix(in, "LABEL ") {
			labels += in
		}
	}
	for _, l := range []string{"title", "description", "version", "revision"} {
		if !strings.Contains(labels, "org.opencontainers.image."+l+"=") {
			problems = append(problems, "no OCI label org.opencontainers.image."+l)
		}
	}
	return problems
}

// TestImageIsNonRootDistroless: the repository's Dockerfile passes
// finalStageProblems, and finalStageProblems catches what it must.
func TestImageIsNonRootDistroless(t *testing.T) {
	t.Parallel()
	ins := dockerfile(t)
	require.Empty(t, finalStageProblems(ins))

	sha := strings.Repeat("ab", 32)
	replace := func(old, new string) []string {
		out := slices.Clone(ins)
		for i := range out {
			out[i] = strings.Replace(out[i], old, new, 1)
		}
		return out
	}
	// Pinned by digest: allowed.
	pinned := replace("golang:1.26-bookworm AS build", "golang:1.26-bookworm@sha256:"+sha+" AS build")
	pinned = replace("static-debian12:nonroot", "static-debian12:nonroot@sha256:"+sha)
	require.Empty(t, finalStageProblems(pinned))
	for name, bad := range map[string][]string{
		"target default": replace("ARG TARGETARCH", "ARG TARGETARCH=amd64"),
		"root":           replace("USER 65532:65532", "USER 0:0"),
		"a shell base":   replace("gcr.io/distroless/static-debian12:nonroot", "debian:12"),
		"a RUN":          replace("USER 65532:65532", "RUN true"),
		"no labels":      replace("org.opencontainers.image.revision=", "revision="),
		"bad digest":     replace("static-debian12:nonroot", "static-debian12:nonroot@sha256:abc"),
	} {
		require.NotEmpty(t, finalStageProblems(bad), name)
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

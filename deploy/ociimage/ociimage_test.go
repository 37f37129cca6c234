package ociimage_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/deploy/ociimage"
)

// fixture writes a fake binary, CA bundle and zoneinfo tree (with a
// symlink, as Debian's has) and returns their paths.
func fixture(t *testing.T) (bin, ca, zi string) {
	t.Helper()
	dir := t.TempDir()
	bin = filepath.Join(dir, "serbero")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF not really"), 0o755))
	ca = filepath.Join(dir, "ca.crt")
	require.NoError(t, os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644))
	zi = filepath.Join(dir, "zoneinfo")
	require.NoError(t, os.MkdirAll(filepath.Join(zi, "Europe"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(zi, "Europe", "Madrid"), []byte("TZif2"), 0o644))
	require.NoError(t, os.Symlink("Europe/Madrid", filepath.Join(zi, "Local")))
	return bin, ca, zi
}

// build writes the image of the repository's Dockerfile (as `make
// k8s-image` does) and reads it back.
func build(t *testing.T, version string) (*ociimage.Image, []byte) {
	t.Helper()
	bin, ca, zi := fixture(t)
	st, err := ociimage.ReadDockerfile(filepath.Join("..", "..", "Dockerfile"), map[string]string{"VERSION": version, "REVISION": "0123abc"})
	require.NoError(t, err)
	require.Len(t, st.Copies, 1)
	var buf bytes.Buffer
	_, err = ociimage.Write(&buf, ociimage.Spec{
		Name: "docker.io/serbero/serbero:" + version, Binary: bin, BinaryName: strings.TrimPrefix(st.Copies[0][1], "/"),
		CACerts: ca, ZoneInfo: zi, User: st.User, Entrypoint: st.Entrypoint, Cmd: st.Cmd, Env: st.Env, Labels: st.Labels,
		Created: time.Unix(1700000000, 0), OS: "linux", Architecture: "amd64",
	})
	require.NoError(t, err)
	img, err := ociimage.Read(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	return img, buf.Bytes()
}

// The image assembled from the Dockerfile's last stage: non-root 65532,
// /serbero as the entrypoint, no shell or anything else to run, the CA
// bundle and zoneinfo, and the OCI labels with the build's version.
func TestImageFromDockerfile(t *testing.T) {
	t.Parallel()
	img, _ := build(t, "1.2.3")

	c := img.Config.Config
	require.Equal(t, "65532:65532", c.User)
	require.Equal(t, []string{"/serbero"}, c.Entrypoint)
	require.Equal(t, []string{"version"}, c.Cmd)
	require.Contains(t, c.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	require.Equal(t, "linux", img.Config.OS)
	require.Equal(t, "amd64", img.Config.Architecture)
	for k, v := range map[string]string{
		"org.opencontainers.image.title":     "serbero",
		"org.opencontainers.image.version":   "1.2.3",
		"org.opencontainers.image.revision":  "0123abc",
		"org.opencontainers.image.base.name": "gcr.io/distroless/static-debian12:nonroot",
	} {
		require.Equal(t, v, c.Labels[k], k)
	}
	require.NotEmpty(t, c.Labels["org.opencontainers.image.description"])
	require.Equal(t, c.Labels, img.Manifest.Annotations, "the manifest carries the labels as annotations")

	d := img.Index.Manifests[0]
	require.Equal(t, "docker.io/serbero/serbero:1.2.3", d.Annotations[ociimage.AnnotationContainerdName])
	require.Equal(t, "1.2.3", d.Annotations[ociimage.AnnotationRefName])
	require.Equal(t, &ociimage.Platform{OS: "linux", Architecture: "amd64"}, d.Platform)

	bin := img.Files["serbero"]
	require.NotNil(t, bin)
	require.EqualValues(t, 0o755, bin.Mode)
	require.Contains(t, string(img.Contents["etc/passwd"]), "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
	require.NotNil(t, img.Files["etc/ssl/certs/ca-certificates.crt"])
	require.NotNil(t, img.Files["usr/share/zoneinfo/Europe/Madrid"])
	require.Equal(t, "Europe/Madrid", img.Files["usr/share/zoneinfo/Local"].Linkname)
	require.EqualValues(t, 0o1777, img.Files["tmp/"].Mode)
	require.Equal(t, 65532, img.Files["home/nonroot/"].Uid)

	// Nothing to run but /serbero: no shell, no other executable.
	for name, h := range img.Files {
		require.False(t, strings.HasPrefix(name, "bin/") || strings.HasPrefix(name, "sbin/") || strings.HasPrefix(name, "usr/bin/"), name)
		if h.Typeflag == tar.TypeReg && name != "serbero" {
			require.Zero(t, h.Mode&0o111, "%s is executable", name)
		}
		require.True(t, h.ModTime.Equal(time.Unix(1700000000, 0)), "%s has the build's time", name)
	}
}

// Two builds of the same inputs are byte-identical.
func TestImageIsReproducible(t *testing.T) {
	t.Parallel()
	bin, ca, zi := fixture(t)
	spec := ociimage.Spec{Name: "docker.io/x/y:1", Binary: bin, BinaryName: "y", CACerts: ca, ZoneInfo: zi,
		User: "65532:65532", Created: time.Unix(1, 0), OS: "linux", Architecture: "arm64"}
	var a, b bytes.Buffer
	da, err := ociimage.Write(&a, spec)
	require.NoError(t, err)
	db, err := ociimage.Write(&b, spec)
	require.NoError(t, err)
	require.Equal(t, da, db)
	require.Equal(t, a.Bytes(), b.Bytes())
}

// Read refuses an archive whose blob was altered.
func TestReadChecksDigests(t *testing.T) {
	t.Parallel()
	_, raw := build(t, "dev")
	// The binary's bytes sit in the compressed layer; flip a byte of the
	// config JSON instead, which is stored as is.
	i := bytes.Index(raw, []byte(`"User":"65532:65532"`))
	require.Positive(t, i)
	bad := bytes.Clone(raw)
	bad[i+9] = '7'
	_, err := ociimage.Read(bytes.NewReader(bad))
	require.ErrorContains(t, err, "digest or size mismatch")
}

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		args     map[string]string
		want     ociimage.Stage
		err      string
	}{
		{
			name: "last stage only, args and defaults expanded",
			in: "FROM golang AS build\nLABEL a=build\nFROM scratch\nARG V=dev\nARG R\n" +
				"LABEL a=\"x ${V}\" \\\n  b=$R c=plain\nENV K=v\nCOPY --from=build /out/app /app\nUSER 1:1\nENTRYPOINT [\"/app\"]\nCMD [\"run\"]\n",
			args: map[string]string{"R": "rev"},
			want: ociimage.Stage{From: "scratch", Copies: [][2]string{{"/out/app", "/app"}}, User: "1:1",
				Entrypoint: []string{"/app"}, Cmd: []string{"run"}, Env: []string{"K=v"},
				Labels: map[string]string{"a": "x dev", "b": "rev", "c": "plain"}},
		},
		{name: "RUN needs an engine", in: "FROM scratch\nRUN true\n", err: "RUN is not supported"},
		{name: "shell-form entrypoint", in: "FROM scratch\nENTRYPOINT /app\n", err: "exec (JSON) form"},
		{name: "COPY from the context", in: "FROM scratch\nCOPY app /app\n", err: "COPY --from"},
		{name: "unterminated label", in: "FROM scratch\nLABEL a=\"x\n", err: "unterminated quote"},
		{name: "no FROM", in: "# nothing\n", err: "no FROM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ociimage.ParseDockerfile(strings.NewReader(tc.in), tc.args)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// FuzzParseDockerfile: any text parses to a stage or an error, never a
// panic; a parsed stage's From is the last FROM's image.
func FuzzParseDockerfile(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "Dockerfile"))
	require.NoError(f, err)
	f.Add(string(raw))
	f.Add("FROM scratch\nLABEL a=\"b c\" d=e\nENTRYPOINT [\"/x\"]\n")
	f.Add("FROM scratch\nLABEL a=\"unterminated\n")
	f.Add("FROM scratch\nARG V\nUSER ${V}:$V\n")
	f.Fuzz(func(t *testing.T, text string) {
		st, err := ociimage.ParseDockerfile(strings.NewReader(text), map[string]string{"V": "1"})
		if err == nil && st.From == "" {
			t.Fatalf("parsed without a base image: %q", text)
		}
	})
}

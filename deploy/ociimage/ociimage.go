// Package ociimage assembles a container image without a container engine
// or a base image: one layer holding a static binary and the few files a
// distroless image has (an /etc/passwd naming uid 65532, the CA bundle, the
// zoneinfo database, /tmp and the non-root user's home), written as an OCI
// image layout in a tar archive that `ctr images import` and
// `podman load` accept. It builds the same image the Dockerfile describes
// for registries where no registry can be reached (the local test cluster,
// docs/deploy.md#10-tried-on). The output is reproducible: every timestamp is
// Spec.Created and every owner is fixed.
package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Media types of the OCI image specification (v1.1).
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// Annotation keys on the index's manifest descriptor: the image name
// containerd gives an imported image, and the OCI reference name (the tag).
const (
	AnnotationContainerdName = "io.containerd.image.name"
	AnnotationRefName        = "org.opencontainers.image.ref.name"
)

// NonRootUID is distroless's "nonroot" user and group, the image's user.
const NonRootUID = 65532

// Spec says what goes into the image.
type Spec struct {
	// Name is the full image reference, e.g. docker.io/serbero/serbero:dev.
	Name string
	// Binary is the file copied to /<BinaryName> with mode 0755.
	Binary string
	// BinaryName is the file name in the image root (e.g. serbero).
	BinaryName string
	// CACerts is the CA bundle copied to /etc/ssl/certs/ca-certificates.crt
	// (empty: none).
	CACerts string
	// ZoneInfo is a zoneinfo directory copied to /usr/share/zoneinfo (empty:
	// none).
	ZoneInfo string
	// User is the config's user ("65532:65532"); empty means root.
	User string
	// Entrypoint is the config's entrypoint (default: /<BinaryName>).
	Entrypoint []string
	// Cmd is the default arguments after the entrypoint.
	Cmd []string
	// Env is added to PATH and SSL_CERT_FILE (when CACerts is set).
	Env []string
	// Labels are the config's labels (OCI annotation keys such as
	// org.opencontainers.image.version).
	Labels map[string]string
	// Created is the time of every file and of the config.
	Created time.Time
	// OS and Architecture of the binary (GOOS/GOARCH names).
	OS, Architecture string
}

// Config is the image configuration blob (the subset of the OCI image
// config that this package writes and tests read).
type Config struct {
	Created      string `json:"created"`
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User       string            `json:"User,omitempty"`
		Env        []string          `json:"Env,omitempty"`
		Entrypoint []string          `json:"Entrypoint,omitempty"`
		Cmd        []string          `json:"Cmd,omitempty"`
		WorkingDir string            `json:"WorkingDir,omitempty"`
		Labels     map[string]string `json:"Labels,omitempty"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	} `json:"history,omitempty"`
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

// Platform is a descriptor's platform.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Index is an OCI image index (index.json).
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// passwd and group are distroless's: root, nobody and nonroot, no shells.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

// Write writes the image described by spec to w as a tar of an OCI image
// layout, and returns the manifest's digest.
func Write(w io.Writer, spec Spec) (string, error) {
	if spec.Name == "" || spec.Binary == "" || spec.BinaryName == "" {
		return "", errors.New("image name, binary and binary name are required")
	}
	if spec.OS == "" || spec.Architecture == "" {
		return "", errors.New("image OS and architecture are required")
	}
	layerTar, err := buildLayer(spec)
	if err != nil {
		return "", fmt.Errorf("build layer: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := zw.Write(layerTar); err != nil {
		return "", fmt.Errorf("compress layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("compress layer: %w", err)
	}
	layer := gz.Bytes()

	created := spec.Created.UTC().Format(time.RFC3339)
	var cfg Config
	cfg.Created = created
	cfg.OS, cfg.Architecture = spec.OS, spec.Architecture
	cfg.Config.User = spec.User
	cfg.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, spec.Env...)
	if spec.CACerts != "" {
		cfg.Config.Env = append(cfg.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	cfg.Config.Entrypoint = spec.Entrypoint
	if len(cfg.Config.Entrypoint) == 0 {
		cfg.Config.Entrypoint = []string{"/" + spec.BinaryName}
	}
	cfg.Config.Cmd = spec.Cmd
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = spec.Labels
	cfg.RootFS.Type = "layers"
	cfg.RootFS.DiffIDs = []string{digest(layerTar)}
	cfg.History = append(cfg.History, struct {
		Created   string `json:"created"`
		CreatedBy string `json:"created_by"`
	}{created, "deploy/ociimage: /" + spec.BinaryName + ", /etc/passwd, CA bundle, zoneinfo"})
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}

	man := Manifest{
		SchemaVersion: 2, MediaType: MediaTypeManifest,
		Config: Descriptor{MediaType: MediaTypeConfig, Digest: digest(cfgJSON), Size: int64(len(cfgJSON))},
		Layers: []Descriptor{{MediaType: MediaTypeLayer, Digest: digest(layer), Size: int64(len(layer))}},
	}
	if len(spec.Labels) > 0 {
		man.Annotations = spec.Labels
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	tag := spec.Name
	if i := strings.LastIndex(tag, ":"); i > strings.LastIndex(tag, "/") {
		tag = tag[i+1:]
	} else {
		tag = "latest"
	}
	idx := Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{{
		MediaType: MediaTypeManifest, Digest: digest(manJSON), Size: int64(len(manJSON)),
		Annotations: map[string]string{AnnotationContainerdName: spec.Name, AnnotationRefName: tag},
		Platform:    &Platform{Architecture: spec.Architecture, OS: spec.OS},
	}}}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return "", err
	}

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{blobPath(layer), layer},
		{blobPath(cfgJSON), cfgJSON},
		{blobPath(manJSON), manJSON},
	}
	dirs := []string{"blobs/", "blobs/sha256/"}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: spec.Created, Format: tar.FormatPAX}); err != nil {
			return "", err
		}
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: spec.Created, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", fmt.Errorf("write %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return "", fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("write archive: %w", err)
	}
	return digest(manJSON), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(b []byte) string {
	return "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:")
}

// layerEntry is one file, directory or symlink of the layer.
type layerEntry struct {
	hdr  tar.Header
	data []byte
}

// buildLayer returns the uncompressed layer tar.
func buildLayer(spec Spec) ([]byte, error) {
	bin, err := os.ReadFile(spec.Binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	var entries []layerEntry
	dir := func(name string, mode int64, uid int) {
		entries = append(entries, layerEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}})
	}
	file := func(name string, mode int64, data []byte) {
		entries = append(entries, layerEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data})
	}
	dir("etc", 0o755, 0)
	file("etc/passwd", 0o644, []byte(passwd))
	file("etc/group", 0o644, []byte(group))
	file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"))
	dir("home", 0o755, 0)
	dir("home/nonroot", 0o700, NonRootUID)
	dir("tmp", 0o1777, 0)
	file(spec.BinaryName, 0o755, bin)
	if spec.CACerts != "" {
		ca, err := os.ReadFile(spec.CACerts)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		dir("etc/ssl", 0o755, 0)
		dir("etc/ssl/certs", 0o755, 0)
		file("etc/ssl/certs/ca-certificates.crt", 0o644, ca)
	}
	if spec.ZoneInfo != "" {
		dir("usr", 0o755, 0)
		dir("usr/share", 0o755, 0)
		zi, err := treeEntries(spec.ZoneInfo, "usr/share/zoneinfo")
		if err != nil {
			return nil, fmt.Errorf("read zoneinfo: %w", err)
		}
		entries = append(entries, zi...)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = spec.Created
		h.Format = tar.FormatPAX
		if h.Uid != 0 {
			h.Uname, h.Gname = "nonroot", "nonroot"
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("layer %s: %w", h.Name, err)
		}
		if len(e.data) > 0 {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("layer %s: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// treeEntries copies a directory tree (files, directories and symlinks)
// under the layer path prefix.
func treeEntries(root, prefix string) ([]layerEntry, error) {
	var out []layerEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := prefix
		if rel != "." {
			name = path.Join(prefix, filepath.ToSlash(rel))
		}
		switch {
		case d.IsDir():
			out = append(out, layerEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755}})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, layerEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}})
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, layerEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}, data: data})
		}
		return nil
	})
	return out, err
}

package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Image is an image archive read back by Read: what a test of the image
// looks at.
type Image struct {
	Index    Index
	Manifest Manifest
	Config   Config
	// Files maps each path of the layer (no leading slash, directories with
	// a trailing slash) to its tar header.
	Files map[string]*tar.Header
	// Contents holds the regular files' bytes, except under usr/share/zoneinfo.
	Contents map[string][]byte
}

// Read reads an archive written by Write (one manifest, one layer) and
// checks every blob against its digest.
func Read(r io.Reader) (*Image, error) {
	blobs := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", h.Name, err)
		}
		blobs[h.Name] = b
	}
	img := &Image{Files: map[string]*tar.Header{}, Contents: map[string][]byte{}}
	if err := json.Unmarshal(blobs["index.json"], &img.Index); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(img.Index.Manifests) != 1 {
		return nil, fmt.Errorf("index.json has %d manifests, want 1", len(img.Index.Manifests))
	}
	blob := func(d Descriptor) ([]byte, error) {
		b, ok := blobs["blobs/sha256/"+strings.TrimPrefix(d.Digest, "sha256:")]
		if !ok {
			return nil, fmt.Errorf("blob %s missing", d.Digest)
		}
		if digest(b) != d.Digest || int64(len(b)) != d.Size {
			return nil, fmt.Errorf("blob %s: digest or size mismatch", d.Digest)
		}
		return b, nil
	}
	mb, err := blob(img.Index.Manifests[0])
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(mb, &img.Manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	cb, err := blob(img.Manifest.Config)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cb, &img.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(img.Manifest.Layers) != 1 {
		return nil, fmt.Errorf("manifest has %d layers, want 1", len(img.Manifest.Layers))
	}
	lb, err := blob(img.Manifest.Layers[0])
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(lb))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	if len(img.Config.RootFS.DiffIDs) != 1 || img.Config.RootFS.DiffIDs[0] != digest(raw) {
		return nil, errors.New("layer diff_id does not match the config")
	}
	lr := tar.NewReader(bytes.NewReader(raw))
	for {
		h, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
		img.Files[h.Name] = h
		if h.Typeflag == tar.TypeReg && !strings.HasPrefix(h.Name, "usr/share/zoneinfo/") {
			b, err := io.ReadAll(lr)
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", h.Name, err)
			}
			img.Contents[h.Name] = b
		}
	}
	return img, nil
}

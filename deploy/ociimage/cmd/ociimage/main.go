// Command ociimage writes a container image archive (an OCI image layout in
// a tar) holding one static binary on a distroless-like root: see package
// ociimage. scripts/k8s/images.sh uses it to build the serbero and pause
// images for the local test cluster, where no registry can be reached:
//
//	ociimage --name docker.io/serbero/serbero:dev --binary bin/serbero \
//	  --user 65532:65532 --cmd version --label org.opencontainers.image.version=dev \
//	  --out out/serbero.oci.tar
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/serbero/serbero/deploy/ociimage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// pairs parses NAME=VALUE flag values.
func pairs(flagName string, l list) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range l {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want NAME=VALUE", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}

func run(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	name := fs.String("name", "", "image reference, e.g. docker.io/serbero/serbero:dev (required)")
	binary := fs.String("binary", "", "static binary to ship (required)")
	binName := fs.String("binary-name", "", "its name in the image root (default: the file's base name)")
	caCerts := fs.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to ship (empty: none)")
	zoneInfo := fs.String("zoneinfo", "/usr/share/zoneinfo", "zoneinfo directory to ship (empty: none)")
	user := fs.String("user", strconv.Itoa(ociimage.NonRootUID)+":"+strconv.Itoa(ociimage.NonRootUID), "the image's user (empty: root)")
	created := fs.String("created", "", "image and file time, Unix seconds (default SOURCE_DATE_EPOCH, else 0)")
	goos := fs.String("os", runtime.GOOS, "the binary's OS")
	goarch := fs.String("arch", runtime.GOARCH, "the binary's architecture")
	out := fs.String("out", "", "archive to write (required)")
	dockerfile := fs.String("dockerfile", "", "take the user, entrypoint, cmd, env, labels and binary name from this Dockerfile's last stage")
	var cmd, env, labels, buildArgs list
	fs.Var(&buildArgs, "build-arg", "a build argument NAME=VALUE of --dockerfile (repeat)")
	fs.Var(&cmd, "cmd", "a default argument (repeat for more)")
	fs.Var(&env, "env", "an environment variable NAME=VALUE (repeat)")
	fs.Var(&labels, "label", "a label KEY=VALUE (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *binary == "" || *out == "" {
		return errors.New("--name, --binary and --out are required")
	}
	if *binName == "" {
		*binName = filepath.Base(*binary)
	}
	if *created == "" {
		*created = os.Getenv("SOURCE_DATE_EPOCH")
	}
	var epoch int64
	if *created != "" {
		var err error
		if epoch, err = strconv.ParseInt(*created, 10, 64); err != nil {
			return fmt.Errorf("--created: %w", err)
		}
	}
	lm, err := pairs("--label", labels)
	if err != nil {
		return err
	}
	var entrypoint []string
	if *dockerfile != "" {
		ba, err := pairs("--build-arg", buildArgs)
		if err != nil {
			return err
		}
		st, err := ociimage.ReadDockerfile(*dockerfile, ba)
		if err != nil {
			return fmt.Errorf("%s: %w", *dockerfile, err)
		}
		if !strings.Contains(st.From, "distroless/static") && st.From != "scratch" {
			return fmt.Errorf("%s: the final stage is FROM %s; only distroless static or scratch can be assembled offline", *dockerfile, st.From)
		}
		if len(st.Copies) != 1 {
			return fmt.Errorf("%s: the final stage must COPY exactly one file (the binary)", *dockerfile)
		}
		*binName = strings.TrimPrefix(st.Copies[0][1], "/")
		*user, entrypoint, cmd, env = st.User, st.Entrypoint, st.Cmd, append(st.Env, env...)
		for k, v := range lm {
			st.Labels[k] = v
		}
		lm = st.Labels
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	dgst, err := ociimage.Write(w, ociimage.Spec{
		Name: *name, Binary: *binary, BinaryName: *binName, CACerts: *caCerts, ZoneInfo: *zoneInfo,
		User: *user, Entrypoint: entrypoint, Cmd: cmd, Env: env, Labels: lm, Created: time.Unix(epoch, 0).UTC(), OS: *goos, Architecture: *goarch,
	})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(*out)
		return fmt.Errorf("write %s: %w", *out, err)
	}
	fmt.Printf("%s %s %s\n", *out, *name, dgst)
	return nil
}

//go:build cluster

package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wait bounds every positive wait: generous, the machine is small and shared.
const wait = 4 * time.Minute

// repoRoot is the repository root (this package is deploy/clustertest).
var repoRoot = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}()

// cluster is the running test cluster, as scripts/k8s/up.sh describes it in
// $K8S_DIR/cluster.env.
type cluster struct {
	t       *testing.T
	env     map[string]string
	kubectl string
	helm    string
	ns      string
}

// connect reads the cluster's settings and checks the API answers.
func connect(t *testing.T, ns string) *cluster {
	t.Helper()
	dir := os.Getenv("K8S_DIR")
	if dir == "" {
		dir = "/tmp/serbero-k8s"
	}
	raw, err := os.ReadFile(filepath.Join(dir, "cluster.env"))
	require.NoError(t, err, "no test cluster: run make k8s-up (or make k8s-ci)")
	env := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	helm := os.Getenv("HELM")
	if helm == "" {
		helm = filepath.Join(repoRoot, "bin", "helm")
	}
	c := &cluster{t: t, env: env, kubectl: env["KUBECTL"], helm: helm, ns: ns}
	c.kube("version")
	return c
}

// cmd runs a command with the cluster's kubeconfig and returns its stdout.
func (c *cluster) cmd(ctx context.Context, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.env["KUBECONFIG"])
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String(), nil
}

// kube runs kubectl in the test namespace and fails the test on error.
func (c *cluster) kube(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := c.cmd(ctx, c.kubectl, append([]string{"-n", c.ns}, args...)...)
	require.NoError(c.t, err)
	return out
}

// helmRun runs helm in the test namespace and fails the test on error.
func (c *cluster) helmRun(args ...string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	start := time.Now()
	out, err := c.cmd(ctx, c.helm, append(args, "--namespace", c.ns)...)
	require.NoError(c.t, err)
	c.t.Logf("helm %s: %s", args[0], time.Since(start).Round(100*time.Millisecond))
	return out
}

// pod is the part of a Pod object the tests read.
type pod struct {
	Metadata struct {
		Name              string            `json:"name"`
		UID               string            `json:"uid"`
		Labels            map[string]string `json:"labels"`
		CreationTimestamp time.Time         `json:"creationTimestamp"`
		DeletionTimestamp *time.Time        `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName           string `json:"serviceAccountName"`
		AutomountServiceAccountToken *bool  `json:"automountServiceAccountToken"`
		Containers                   []struct {
			Name           string `json:"name"`
			Image          string `json:"image"`
			ReadinessProbe *probe `json:"readinessProbe"`
			LivenessProbe  *probe `json:"livenessProbe"`
			StartupProbe   *probe `json:"startupProbe"`
		} `json:"containers"`
		Volumes []struct {
			Name   string `json:"name"`
			Secret *struct {
				SecretName string `json:"secretName"`
			} `json:"secret"`
			Projected *struct {
				Sources []struct {
					Secret *struct {
						Name string `json:"name"`
					} `json:"secret"`
				} `json:"sources"`
			} `json:"projected"`
		} `json:"volumes"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			Name         string `json:"name"`
			Ready        bool   `json:"ready"`
			RestartCount int    `json:"restartCount"`
			Image        string `json:"image"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

type probe struct {
	GRPC *struct {
		Port    int    `json:"port"`
		Service string `json:"service"`
	} `json:"grpc"`
}

func (p pod) component() string { return p.Metadata.Labels["app.kubernetes.io/component"] }

func (p pod) ready() bool {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True" && p.Metadata.DeletionTimestamp == nil
		}
	}
	return false
}

// pods lists the pods matching selector.
func (c *cluster) pods(selector string) []pod {
	c.t.Helper()
	var list struct {
		Items []pod `json:"items"`
	}
	require.NoError(c.t, json.Unmarshal([]byte(c.kube("get", "pods", "-l", selector, "-o", "json")), &list))
	return list.Items
}

// waitFor polls cond every half second until it holds or wait passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", wait, what)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// forward makes a host address pods can reach (the bridge gateway) that
// forwards TCP to target ("host:port", e.g. an in-process relay on
// 127.0.0.1). It returns the reachable address.
func forward(t *testing.T, gateway, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(gateway, "0"))
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = struct{}{}
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			track(in, true)
			track(out, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// relayURLForPods is the relay's URL as the pods reach it through forward.
func relayURLForPods(t *testing.T, gateway, relayURL string) string {
	t.Helper()
	u, err := url.Parse(relayURL)
	require.NoError(t, err)
	return "ws://" + forward(t, gateway, u.Host)
}

// podWatch records, with the time each was seen, the state changes of the
// pods matching a selector (kubectl get --watch).
type podWatch struct {
	mu     sync.Mutex
	events []podEvent
	stop   func()
}

type podEvent struct {
	at       time.Time
	name     string
	deleting bool
	ready    bool
}

func (c *cluster) watchPods(selector string) *podWatch {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, c.kubectl, "-n", c.ns, "get", "pods", "-l", selector, "--watch", "-o",
		`jsonpath={.metadata.name} {.metadata.deletionTimestamp} ready={.status.conditions[?(@.type=="Ready")].status}{"\n"}`)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.env["KUBECONFIG"])
	stdout, err := cmd.StdoutPipe()
	require.NoError(c.t, err)
	require.NoError(c.t, cmd.Start())
	w := &podWatch{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 2 {
				continue
			}
			ev := podEvent{at: time.Now(), name: f[0], ready: f[len(f)-1] == "ready=True", deleting: len(f) == 3}
			w.mu.Lock()
			w.events = append(w.events, ev)
			w.mu.Unlock()
		}
	}()
	w.stop = func() {
		cancel()
		<-done
		_ = cmd.Wait()
	}
	c.t.Cleanup(w.stop)
	return w
}

// gap is the time from the first sign that pod old is going away (its
// deletion timestamp, or its readiness lost) to the first Ready of another
// pod: how long the component had no ready pod.
func (w *podWatch) gap(old string) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var gone time.Time
	for _, e := range w.events {
		if e.name == old && (e.deleting || !e.ready) && gone.IsZero() {
			gone = e.at
		}
		if e.name != old && e.ready && !gone.IsZero() {
			return e.at.Sub(gone), true
		}
	}
	return 0, false
}

// report collects the cluster's state for a failed test into a directory
// (scripts/k8s/report.sh) and prints where it is.
func (c *cluster) report() {
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("serbero-k8s-report-%d", time.Now().Unix()))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "k8s", "report.sh"), dir, c.ns)
	cmd.Env = append(os.Environ(), "K8S_DIR="+c.env["K8S_DIR"])
	out, err := cmd.CombinedOutput()
	c.t.Logf("failure report in %s (%v):\n%s", dir, err, out)
}

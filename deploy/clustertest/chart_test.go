//go:build cluster

package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

const (
	release   = "serbero"
	namespace = "serbero-ci"
	// dbPassword is the password of the database role the pods use.
	dbPassword = "ci-only-password"
)

// components are the chart's Deployments and their readiness service names.
var components = map[string]string{
	"relaygw":       "serbero.relaygw.v1.RelayGatewayService",
	"intakesvc":     "serbero.intakesvc.v1.IntakeService",
	"authsvc":       "serbero.authsvc.v1.AuthService",
	"mediationsvc":  "serbero.mediationsvc.v1.MediationService",
	"escalationsvc": "serbero.escalationsvc.v1.EscalationService",
}

// world is the test's outside world: the relays, the Mostro node, the
// solvers, the database, as a platform team would have them.
type world struct {
	c            *cluster
	db           *pgxpool.Pool
	mostro       *fakemostro.Mostro
	read, write  *fakesolver.Solver
	relays       []*relay.Relay
	serbero      keys.Keys
	imageRepo    string
	tags         []string
	valuesFile   string
	mu           sync.Mutex
	disputes     []string // opened, in order
	handoffsByID map[int64]string
}

// TestChartOnCluster is the chart's whole life on the cluster, in order.
// Each step builds on the state the previous one left.
func TestChartOnCluster(t *testing.T) {
	w := setup(t)
	start := time.Now()
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		s := time.Now()
		t.Logf("=== %s", name)
		f(t)
		t.Logf("--- %s: %s", name, time.Since(s).Round(100*time.Millisecond))
	}
	step("install", w.install)
	step("dispute through the cluster", w.disputeThroughCluster)
	step("handoff through escalationsvc", w.handoffThroughEscalation)
	step("upgrade while disputes stream", w.upgradeWhileStreaming)
	step("rollback while disputes stream", w.rollbackWhileStreaming)
	step("escalationsvc x3, pods force-deleted mid-drain", w.scaleAndKillMidDrain)
	step("relaygw pod deleted", w.deleteRelaygw)
	step("helm test", w.helmTest)
	step("helm uninstall", w.uninstall)
	t.Logf("all steps: %s", time.Since(start).Round(time.Second))
}

func setup(t *testing.T) *world {
	c := connect(t, namespace)
	t.Cleanup(func() {
		if t.Failed() {
			c.report()
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, _ = c.cmd(ctx, c.kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true")
	})
	gateway := c.env["K8S_GATEWAY"]
	w := &world{c: c, imageRepo: c.env["K8S_SERBERO_IMAGE_REPO"], tags: strings.Fields(c.env["K8S_SERBERO_IMAGE_TAGS"]),
		handoffsByID: map[int64]string{}}
	require.Len(t, w.tags, 2, "up.sh loads two tags of the serbero image")

	// Postgres, "external" to the cluster: a database and role of our own.
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.env["K8S_PG_ADMIN_URL"])
	require.NoError(t, err)
	defer admin.Close(ctx)
	for _, q := range []string{
		`DROP DATABASE IF EXISTS serbero WITH (FORCE)`,
		`DROP ROLE IF EXISTS serbero`,
		`CREATE ROLE serbero LOGIN PASSWORD '` + dbPassword + `'`,
		`CREATE DATABASE serbero OWNER serbero`,
	} {
		_, err := admin.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	hostURL := fmt.Sprintf("postgres://serbero:%s@127.0.0.1:%s/serbero?sslmode=disable", dbPassword, c.env["K8S_PG_PORT"])
	podURL := fmt.Sprintf("postgres://serbero:%s@%s:%s/serbero?sslmode=disable", dbPassword, c.env["K8S_PG_POD_HOST"], c.env["K8S_PG_PORT"])
	w.db, err = pgxpool.New(ctx, hostURL)
	require.NoError(t, err)
	t.Cleanup(w.db.Close)

	// Two relays, the Mostro node and two solvers, on the host; the pods
	// reach the relays through the bridge gateway.
	r1, r2 := relay.Start(t), relay.Start(t)
	w.relays = []*relay.Relay{r1, r2}
	podRelays := []string{relayURLForPods(t, gateway, r1.URL()), relayURLForPods(t, gateway, r2.URL())}
	w.serbero = keys.Generate()
	w.mostro = fakemostro.Start(t, fakemostro.Config{Name: "CI node"}, r1.URL(), r2.URL())
	w.mostro.AddSolver(w.serbero.PublicKey(), fakemostro.PermReadWrite)
	w.read = fakesolver.Start(t, r1.URL(), r2.URL())
	w.write = fakesolver.Start(t, r1.URL(), r2.URL())

	// The namespace and the Secrets a platform team creates before installing.
	_, _ = c.cmd(ctx, c.kubectl, "delete", "namespace", namespace, "--ignore-not-found", "--wait=true")
	c.kube("create", "namespace", namespace)
	c.kube("create", "secret", "generic", "serbero-nostr-key", "--from-literal=nostr-key="+w.serbero.RevealSecretHex())
	c.kube("create", "secret", "generic", "serbero-database", "--from-literal=url="+podURL)

	values := fmt.Sprintf(`# What a platform team writes: its image, its database Secret, its key Secret,
# its Mostro node, relays and solvers.
image:
  repository: %s
  tag: %s
  pullPolicy: Never
database:
  existingSecret: serbero-database
  key: url
relaygw:
  privateKey:
    existingSecret: serbero-nostr-key
    key: nostr-key
config:
  serbero:
    log_level: debug
  mostro:
    pubkey: %s
  relays:
    - url: %s
    - url: %s
  solvers:
    - pubkey: %s
      permission: read
    - pubkey: %s
      permission: write
  timeouts:
    renotification_seconds: 3600
  escalation:
    enabled: true
    dispatch_interval_seconds: 5
    claim_timeout_seconds: 15
  server:
    drain_seconds: 2
    shutdown_grace_seconds: 5
defaults:
  terminationGracePeriodSeconds: 15
escalationsvc:
  replicas: 2
`, w.imageRepo, w.tags[0], w.mostro.Pubkey(), podRelays[0], podRelays[1], w.read.Pubkey(), w.write.Pubkey())
	w.valuesFile = filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(w.valuesFile, []byte(values), 0o600))
	t.Logf("values:\n%s", values)
	return w
}

func (w *world) chart() string { return filepath.Join(repoRoot, "deploy", "k8s") }

// install: the migration Job runs before the services, every pod becomes
// Ready through its gRPC probes, and only relaygw's pod has the key.
func (w *world) install(t *testing.T) {
	w.c.helmRun("install", release, w.chart(), "-f", w.valuesFile, "--wait", "--timeout", "8m")

	// The pre-install hook migrated the schema before any Deployment existed.
	var migrated time.Time
	require.NoError(t, w.db.QueryRow(context.Background(), `SELECT max(tstamp) FROM `+pgdb.VersionTable).Scan(&migrated))
	out := w.c.kube("get", "deployments", "-l", "app.kubernetes.io/instance="+release, "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.metadata.creationTimestamp}{"\n"}{end}`)
	deployments := strings.Fields(out)
	require.Len(t, deployments, len(components))
	for _, d := range deployments {
		name, ts, _ := strings.Cut(d, "=")
		created, err := time.Parse(time.RFC3339, ts)
		require.NoError(t, err)
		// creationTimestamp has second precision.
		require.False(t, created.Before(migrated.Truncate(time.Second)), "%s created at %s, before the migration finished at %s", name, created, migrated)
	}
	require.Empty(t, w.c.kube("get", "jobs", "-o", "name"), "the succeeded migration Job is deleted by its hook policy")

	pods := w.c.pods("app.kubernetes.io/instance=" + release)
	byComponent := map[string]int{}
	for _, p := range pods {
		comp := p.component()
		byComponent[comp]++
		require.True(t, p.ready(), "%s is Ready", p.Metadata.Name)
		require.Len(t, p.Spec.Containers, 1)
		ctr := p.Spec.Containers[0]
		require.Equal(t, w.imageRepo+":"+w.tags[0], ctr.Image)
		for name, pr := range map[string]*probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe, "startup": ctr.StartupProbe} {
			require.NotNil(t, pr, "%s: %s probe", p.Metadata.Name, name)
			require.NotNil(t, pr.GRPC, "%s: %s probe is native gRPC", p.Metadata.Name, name)
			require.Equal(t, 50051, pr.GRPC.Port)
		}
		require.Equal(t, components[comp], ctr.ReadinessProbe.GRPC.Service, "%s readiness service", comp)
		require.Empty(t, ctr.LivenessProbe.GRPC.Service, "liveness asks the overall health")
		require.Zero(t, p.Status.ContainerStatuses[0].RestartCount, "%s restarted", p.Metadata.Name)
	}
	require.Equal(t, map[string]int{"relaygw": 1, "intakesvc": 1, "authsvc": 1, "mediationsvc": 1, "escalationsvc": 2}, byComponent)
	w.checkKeyOnlyInRelaygw(t, pods)
}

// checkKeyOnlyInRelaygw looks at the live pods: their volumes, and the
// files the kubelet actually mounted for them on this node. Only relaygw's
// pod references the key Secret, and only its volume holds the key.
func (w *world) checkKeyOnlyInRelaygw(t *testing.T, pods []pod) {
	t.Helper()
	byUID := map[string]pod{}
	for _, p := range pods {
		byUID[p.Metadata.UID] = p
		refs := false
		for _, v := range p.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "serbero-nostr-key" {
				refs = true
			}
			if v.Projected != nil {
				for _, s := range v.Projected.Sources {
					if s.Secret != nil && s.Secret.Name == "serbero-nostr-key" {
						refs = true
					}
				}
			}
		}
		require.Equal(t, p.component() == "relaygw", refs, "%s references the key Secret", p.Metadata.Name)
		require.NotNil(t, p.Spec.AutomountServiceAccountToken)
		require.False(t, *p.Spec.AutomountServiceAccountToken, "%s mounts an API token", p.Metadata.Name)
	}
	secret := w.serbero.RevealSecretHex()
	holders := map[string]bool{}
	podsDir := filepath.Join(w.c.env["K8S_DIR"], "kubelet", "pods")
	err := filepath.Walk(podsDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || info.Size() > 1<<16 || !strings.Contains(path, "/volumes/") {
			return nil //nolint:nilerr // files vanish while pods change; unreadable ones hold no key
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), secret) {
			uid := strings.Split(strings.TrimPrefix(path, podsDir+"/"), "/")[0]
			holders[uid] = true
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, holders, 1, "exactly one pod has the key mounted")
	for uid := range holders {
		require.Equal(t, "relaygw", byUID[uid].component(), "the key is mounted into %s", byUID[uid].Metadata.Name)
	}
}

// open publishes n disputes from the Mostro node and records their ids.
func (w *world) open(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = w.mostro.OpenDispute(fakemostro.DisputeSpec{}).ID
	}
	w.mu.Lock()
	w.disputes = append(w.disputes, ids...)
	w.mu.Unlock()
	return ids
}

// stream opens a dispute every interval until the returned stop is called;
// stop returns the ids opened.
func (w *world) stream(interval time.Duration) (stop func() []string) {
	done := make(chan struct{})
	var ids []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				ids = append(ids, w.open(1)...)
			}
		}
	}()
	return func() []string {
		close(done)
		wg.Wait()
		return ids
	}
}

// notified counts, per dispute id, the initial-notification DMs a solver got
// from Serbero.
func (w *world) notified(s *fakesolver.Solver) map[string]int {
	out := map[string]int{}
	for _, m := range s.Messages() {
		if m.From != w.serbero.PublicKey() || !strings.HasPrefix(m.Body, "New Mostro dispute requires attention.\n") {
			continue
		}
		for _, line := range strings.Split(m.Body, "\n") {
			if id, ok := strings.CutPrefix(line, "dispute_id: "); ok {
				out[id]++
			}
		}
	}
	return out
}

// escalated counts, per dispute id, the escalation_handoff DMs a solver got.
func (w *world) escalated(s *fakesolver.Solver) map[string]int {
	out := map[string]int{}
	for _, m := range s.Messages() {
		if m.From != w.serbero.PublicKey() || !strings.HasPrefix(m.Body, "escalation_handoff/v1\n") {
			continue
		}
		lines := strings.Split(m.Body, "\n")
		if id, ok := strings.CutPrefix(lines[1], "Dispute: "); ok {
			out[id]++
		}
	}
	return out
}

// checkAllNotifiedOnce waits until both solvers have the initial
// notification of every dispute opened so far, then checks none came twice.
func (w *world) checkAllNotifiedOnce(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	ids := append([]string(nil), w.disputes...)
	w.mu.Unlock()
	for _, s := range []*fakesolver.Solver{w.read, w.write} {
		waitFor(t, fmt.Sprintf("all %d disputes notified to solver %s", len(ids), s.Pubkey()[:8]), func() bool {
			got := w.notified(s)
			for _, id := range ids {
				if got[id] == 0 {
					return false
				}
			}
			return true
		})
		got := w.notified(s)
		var twice []string
		for id, n := range got {
			if n > 1 {
				twice = append(twice, fmt.Sprintf("%s×%d", id, n))
			}
		}
		sort.Strings(twice)
		require.Empty(t, twice, "disputes notified more than once")
		require.Len(t, got, len(ids), "notifications for disputes nobody opened")
	}
}

func (w *world) disputeThroughCluster(t *testing.T) {
	ids := w.open(1)
	w.checkAllNotifiedOnce(t)
	var state string
	require.NoError(t, w.db.QueryRow(context.Background(), `SELECT lifecycle_state FROM disputes WHERE dispute_id = $1`, ids[0]).Scan(&state))
	t.Logf("dispute %s is %s", ids[0], state)
}

// enqueue inserts handoffs for disputes as mediation would (pkg/handoff).
func (w *world) enqueue(t *testing.T, disputes []string) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, w.db, func(tx pgx.Tx) error {
		for _, d := range disputes {
			e, err := handoff.Enqueue(ctx, tx, handoff.Package{
				DisputeID: d, Trigger: "conflicting_claims", PromptBundleID: "phase3-default", PolicyHash: "ci",
			}, handoff.Meta{})
			if err != nil {
				return err
			}
			w.handoffsByID[e.ID] = d
		}
		return nil
	}))
}

// checkHandoffsOnce waits until every handoff is done and the write solver
// has its DM, then checks each was dispatched and delivered exactly once
// (and none reached the read-only solver).
func (w *world) checkHandoffsOnce(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, fmt.Sprintf("%d handoffs done", len(w.handoffsByID)), func() bool {
		var open int
		require.NoError(t, w.db.QueryRow(ctx, `SELECT count(*) FROM handoffs WHERE status <> 'done'`).Scan(&open))
		return open == 0
	})
	var n, dupes int
	require.NoError(t, w.db.QueryRow(ctx, `SELECT count(*), count(*) - count(DISTINCT handoff_event_id) FROM escalation_dispatches`).Scan(&n, &dupes))
	require.Equal(t, len(w.handoffsByID), n, "one dispatch row per handoff")
	require.Zero(t, dupes)
	waitFor(t, "every handoff's DM at the write solver", func() bool {
		got := w.escalated(w.write)
		for _, d := range w.handoffsByID {
			if got[d] == 0 {
				return false
			}
		}
		return true
	})
	for d, k := range w.escalated(w.write) {
		require.Equal(t, 1, k, "dispute %s escalated %d times", d, k)
	}
	require.Len(t, w.escalated(w.write), len(w.handoffsByID))
	require.Empty(t, w.escalated(w.read), "a read-only solver gets no handoff")
}

func (w *world) handoffThroughEscalation(t *testing.T) {
	w.mu.Lock()
	first := w.disputes[0]
	w.mu.Unlock()
	w.enqueue(t, []string{first})
	w.checkHandoffsOnce(t)
}

// rollWhileStreaming runs a helm command that restarts every Deployment
// while disputes stream, then checks all reached both solvers once and
// reports relaygw's Recreate gap.
func (w *world) rollWhileStreaming(t *testing.T, wantTag string, helmArgs ...string) {
	t.Helper()
	old := w.c.pods("app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=relaygw")
	require.Len(t, old, 1)
	watch := w.c.watchPods("app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=relaygw")
	stop := w.stream(500 * time.Millisecond)
	w.c.helmRun(helmArgs...)
	streamed := stop()
	t.Logf("%d disputes opened during helm %s", len(streamed), helmArgs[0])
	require.NotEmpty(t, streamed)
	w.checkAllNotifiedOnce(t)
	gap, ok := watch.gap(old[0].Metadata.Name)
	require.True(t, ok, "relaygw was replaced")
	t.Logf("relaygw Recreate gap (old pod terminating → new pod Ready) during helm %s: %s", helmArgs[0], gap.Round(100*time.Millisecond))
	for _, p := range w.c.pods("app.kubernetes.io/instance=" + release) {
		if p.Metadata.DeletionTimestamp != nil {
			continue
		}
		require.Equal(t, w.imageRepo+":"+wantTag, p.Spec.Containers[0].Image, p.Metadata.Name)
		require.True(t, p.ready(), "%s Ready", p.Metadata.Name)
	}
}

func (w *world) upgradeWhileStreaming(t *testing.T) {
	w.rollWhileStreaming(t, w.tags[1], "upgrade", release, w.chart(), "-f", w.valuesFile, "--set", "image.tag="+w.tags[1], "--wait", "--timeout", "8m")
}

func (w *world) rollbackWhileStreaming(t *testing.T) {
	w.rollWhileStreaming(t, w.tags[0], "rollback", release, "1", "--wait", "--timeout", "8m")
}

// scaleAndKillMidDrain: three escalationsvc replicas drain a batch of
// handoffs while two of them are force-deleted; every handoff is still
// dispatched exactly once.
func (w *world) scaleAndKillMidDrain(t *testing.T) {
	w.c.helmRun("upgrade", release, w.chart(), "-f", w.valuesFile, "--set", "escalationsvc.replicas=3", "--wait", "--timeout", "8m")
	sel := "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=escalationsvc"
	pods := w.c.pods(sel)
	require.Len(t, pods, 3)

	// Handoffs for disputes intake knows (escalationsvc reads them), all
	// but the first, which already has one.
	w.mu.Lock()
	candidates := append([]string(nil), w.disputes[1:]...)
	w.mu.Unlock()
	if len(candidates) < 40 {
		candidates = append(candidates, w.open(40-len(candidates))...)
		w.checkAllNotifiedOnce(t)
	}
	batch := candidates[:40]
	// Slow relays (each gift wrap held 400 ms before its OK) keep the
	// replicas busy dispatching long enough for the kills to land mid-drain.
	for _, r := range w.relays {
		r.SetFaults(relay.Faults{StallIncoming: 400 * time.Millisecond, StallMatch: relay.Kinds(mostro.KindGiftWrap)})
	}
	w.enqueue(t, batch)
	w.c.kube("delete", "pod", pods[0].Metadata.Name, pods[1].Metadata.Name, "--grace-period=0", "--force")
	var pending int
	require.NoError(t, w.db.QueryRow(context.Background(), `SELECT count(*) FROM handoffs WHERE status <> 'done'`).Scan(&pending))
	t.Logf("force-deleted %s and %s with %d of %d handoffs not yet done", pods[0].Metadata.Name, pods[1].Metadata.Name, pending, len(batch))
	require.Positive(t, pending, "the replicas had drained the queue before the kills")
	w.checkHandoffsOnce(t)
	for _, r := range w.relays {
		r.ClearFaults()
	}
	waitFor(t, "3 escalationsvc pods Ready again", func() bool {
		ready := 0
		for _, p := range w.c.pods(sel) {
			if p.ready() {
				ready++
			}
		}
		return ready == 3
	})
}

// deleteRelaygw: the relaygw pod is deleted while disputes stream; the
// Deployment brings a new one and nothing is lost or sent twice.
func (w *world) deleteRelaygw(t *testing.T) {
	sel := "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=relaygw"
	old := w.c.pods(sel)
	require.Len(t, old, 1)
	watch := w.c.watchPods(sel)
	stop := w.stream(500 * time.Millisecond)
	w.c.kube("delete", "pod", old[0].Metadata.Name, "--wait=true")
	waitFor(t, "a new relaygw pod Ready", func() bool {
		for _, p := range w.c.pods(sel) {
			if p.Metadata.Name != old[0].Metadata.Name && p.ready() {
				return true
			}
		}
		return false
	})
	w.open(3)
	streamed := stop()
	t.Logf("%d disputes opened while relaygw was replaced", len(streamed))
	w.checkAllNotifiedOnce(t)
	gap, ok := watch.gap(old[0].Metadata.Name)
	require.True(t, ok)
	t.Logf("relaygw gap after pod deletion: %s", gap.Round(100*time.Millisecond))
}

// helmTest: the test hook fails while a component has no ready pod (its
// logs, kept on failure, name it), and passes once all are back.
func (w *world) helmTest(t *testing.T) {
	sel := "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=authsvc"
	w.c.kube("scale", "deployment", release+"-authsvc", "--replicas=0")
	waitFor(t, "authsvc scaled to zero", func() bool { return len(w.c.pods(sel)) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	out, err := w.c.cmd(ctx, w.c.helm, "test", release, "--logs", "--timeout", "3m", "--namespace", namespace)
	require.Error(t, err, "helm test passed with authsvc down:\n%s", out)
	t.Logf("helm test with authsvc down (expected to fail):\n%v", err)
	require.Contains(t, err.Error(), "Phase:          Failed")
	require.Regexp(t, `serbero-authsvc:50051 serbero\.authsvc\.v1\.AuthService: .*(Unavailable|no answer)`, err.Error())
	require.Contains(t, err.Error(), "serbero-relaygw:50051 serbero.relaygw.v1.RelayGatewayService: SERVING")

	w.c.kube("scale", "deployment", release+"-authsvc", "--replicas=1")
	waitFor(t, "authsvc Ready again", func() bool {
		ps := w.c.pods(sel)
		return len(ps) == 1 && ps[0].ready()
	})
	// The hook deletes the test Pod once it succeeds, so there are no logs to
	// read then: the phase is the verdict.
	out = w.c.helmRun("test", release, "--timeout", "5m")
	t.Logf("helm test:\n%s", out)
	require.Regexp(t, `TEST SUITE:\s+serbero-test-health\n(.*\n){2}Phase:\s+Succeeded`, out)
}

// uninstall: nothing of the release is left in the namespace but what the
// platform team created (its two Secrets) and what Kubernetes itself puts in
// every namespace.
func (w *world) uninstall(t *testing.T) {
	w.c.helmRun("uninstall", release, "--wait", "--timeout", "5m")
	waitFor(t, "the release's pods gone", func() bool { return len(w.c.pods("app.kubernetes.io/instance="+release)) == 0 })
	// Dependents (endpoint slices, ReplicaSets) go with the garbage collector, shortly after.
	var left []string
	waitFor(t, "nothing of the release left in the namespace", func() bool {
		out := w.c.kube("get", "all,configmaps,secrets,serviceaccounts,networkpolicies,poddisruptionbudgets,roles,rolebindings,jobs,horizontalpodautoscalers,endpointslices,leases", "-o", "name")
		left = left[:0]
		for _, name := range strings.Fields(out) {
			switch name {
			case "secret/serbero-nostr-key", "secret/serbero-database", "serviceaccount/default", "configmap/kube-root-ca.crt":
				continue
			}
			left = append(left, name)
		}
		if len(left) > 0 {
			t.Logf("left: %v", left)
		}
		return len(left) == 0
	})
	cluster := w.c.kube("get", "clusterroles,clusterrolebindings,persistentvolumes", "-l", "app.kubernetes.io/instance="+release, "-o", "name")
	require.Empty(t, strings.TrimSpace(cluster), "cluster-scoped objects left")
}

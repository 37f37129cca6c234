package systest_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
)

// binary is the serbero command under test, built once by TestMain
// (without -race: the services are not what the race detector watches
// here, and it would triple their CPU).
var binary string

// disputesFlag sizes the load of the scenarios that stream disputes.
var disputesFlag = flag.Int("systest.disputes", 0,
	"disputes each streaming scenario opens (default $SERBERO_SYSTEST_DISPUTES, else 20)")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "serbero-systest-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, "systest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "serbero")
	build := exec.Command("go", "build", "-o", binary, "github.com/serbero/serbero/cmd/serbero")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "systest: build serbero:", err)
		return 1
	}
	return m.Run()
}

// disputes is how many disputes a streaming scenario opens.
func disputes(t *testing.T) int {
	t.Helper()
	if *disputesFlag > 0 {
		return *disputesFlag
	}
	if v := os.Getenv("SERBERO_SYSTEST_DISPUTES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "SERBERO_SYSTEST_DISPUTES")
		require.Positive(t, n, "SERBERO_SYSTEST_DISPUTES")
		return n
	}
	return 20
}

// Timeouts. The machine CI runs on has 2 cores shared with the rest of
// make test, so waits are generous; none of them is slept through.
const (
	// startWait bounds a process start (health SERVING).
	startWait = 90 * time.Second
	// stall is how long a wait for DMs tolerates no progress at all.
	stall = 60 * time.Second
	// quiet is the window of negative waits (nothing more arrives).
	quiet = 2 * time.Second
	// exitWait bounds a process exit after a signal.
	exitWait = 30 * time.Second
)

// Service targets the harness runs.
const (
	relaygw       = "relaygw"
	intakesvc     = "intakesvc"
	authsvc       = "authsvc"
	escalationsvc = "escalationsvc"
	// mediationsvc (phase 3) is not started yet: when it exists, add it
	// to Options.Services (and its keys to Options.ExtraConfig); see
	// docs/testing.md#extending-it.
)

// Options shape a system.
type Options struct {
	// Solvers are the configured solvers' permissions, in configuration
	// order; nil means {"write", "read", "read"}.
	Solvers []string
	// Replicas is how many processes run each service; missing services
	// run one. Only services listed in Services run.
	Replicas map[string]int
	// Services to run, in start order; nil means relaygw, intakesvc,
	// authsvc, escalationsvc.
	Services []string
	// RenotifySeconds and RenotifyCheckSeconds are [timeouts]; 0 means
	// 3600 (never fires within a test).
	RenotifySeconds, RenotifyCheckSeconds int
	// ExtraConfig is appended to every service's configuration file.
	ExtraConfig string
}

// System is one test's Serbero: processes, relays, fake Mostro, solvers.
type System struct {
	t   *testing.T
	db  *pgdbtest.DB
	dir string

	opts      Options
	token     string
	tokenFile string
	serbero   keys.Keys
	Mostro    *fakemostro.Mostro
	// Relays are the relay processes; RelayURLs their websocket URLs.
	Relays    []*Proc
	RelayURLs []string
	// Solvers are the fake solvers, in configuration order.
	Solvers []*fakesolver.Solver
	// Perms are the solvers' permissions.
	Perms []string
	// Procs are the service processes by target, replicas in order.
	Procs map[string][]*Proc
}

// Start builds a system and waits until every service is healthy.
// Everything stops at the end of the test, whether it passed or not.
func Start(t *testing.T, opts Options) *System {
	t.Helper()
	if opts.Solvers == nil {
		opts.Solvers = []string{"write", "read", "read"}
	}
	if opts.Services == nil {
		opts.Services = []string{relaygw, intakesvc, authsvc, escalationsvc}
	}
	if opts.RenotifySeconds == 0 {
		opts.RenotifySeconds = 3600
	}
	if opts.RenotifyCheckSeconds == 0 {
		opts.RenotifyCheckSeconds = 3600
	}
	s := &System{t: t, db: pgdbtest.NewDB(t), dir: t.TempDir(), opts: opts, Procs: map[string][]*Proc{},
		serbero: keys.Generate(), Perms: opts.Solvers}
	s.token = randomHex(t, 32)
	s.tokenFile = filepath.Join(s.dir, "token")
	require.NoError(t, os.WriteFile(s.tokenFile, []byte(s.token+"\n"), 0o600))

	// Registered first, so it runs last: the processes' logs of a failed
	// test, after every process is down.
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
		}
	})

	for i := range 2 {
		addr := freeAddr(t)
		p := s.newProc(fmt.Sprintf("relay-%d", i), []string{"devtool", "relay", "--listen", addr}, "")
		p.Start()
		s.Relays = append(s.Relays, p)
		s.RelayURLs = append(s.RelayURLs, "ws://"+addr)
	}
	for _, r := range s.Relays {
		r.WaitLog("listening on", startWait)
	}

	s.Mostro = fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2, PoW: 4, PoWFirstContact: 8, Name: "systest"},
		s.RelayURLs...)
	for range opts.Solvers {
		s.Solvers = append(s.Solvers, fakesolver.Start(t, s.RelayURLs...))
	}

	// Addresses are fixed before anything starts: every config names its
	// peers, and a restarted process comes back on the same port.
	addrs := map[string][]string{}
	for _, svc := range opts.Services {
		for range max(opts.Replicas[svc], 1) {
			addrs[svc] = append(addrs[svc], freeAddr(t))
		}
	}
	for _, svc := range opts.Services {
		for i, addr := range addrs[svc] {
			name := svc
			if len(addrs[svc]) > 1 {
				name = fmt.Sprintf("%s-%d", svc, i)
			}
			cfg := s.writeConfig(name, svc, addr, addrs)
			p := s.newProc(name, []string{"serve", "--target=" + svc, "--config", cfg}, addr)
			p.Start()
			s.Procs[svc] = append(s.Procs[svc], p)
		}
		for _, p := range s.Procs[svc] {
			p.WaitHealthy(startWait)
		}
	}
	return s
}

// writeConfig writes the configuration file of one service process. Only
// relaygw's holds Serbero's secret key.
func (s *System) writeConfig(name, svc, addr string, addrs map[string][]string) string {
	var b strings.Builder
	if svc == relaygw {
		fmt.Fprintf(&b, "[serbero]\nprivate_key = %q\n\n", s.serbero.RevealSecretHex())
	}
	fmt.Fprintf(&b, "[mostro]\npubkey = %q\n\n", s.Mostro.Pubkey())
	if svc == relaygw {
		for _, u := range s.RelayURLs {
			fmt.Fprintf(&b, "[[relays]]\nurl = %q\n\n", u)
		}
	}
	for i, sv := range s.Solvers {
		fmt.Fprintf(&b, "[[solvers]]\npubkey = %q\npermission = %q\n\n", sv.Pubkey(), s.Perms[i])
	}
	fmt.Fprintf(&b, "[timeouts]\nrenotification_seconds = %d\nrenotification_check_interval_seconds = %d\n\n",
		s.opts.RenotifySeconds, s.opts.RenotifyCheckSeconds)
	b.WriteString("[escalation]\nenabled = true\ndispatch_interval_seconds = 1\nclaim_timeout_seconds = 5\n\n")
	b.WriteString("[relaygw]\nreconnect_max_backoff_seconds = 1\n\n")
	fmt.Fprintf(&b, "[database]\nurl = %q\nmax_conns = 5\n\n", s.db.URL)
	fmt.Fprintf(&b, "[server]\ngrpc_listen = %q\nmetrics_listen = \"\"\nlog_format = \"json\"\ndrain_seconds = 0\nshutdown_grace_seconds = 10\n\n", addr)
	b.WriteString("[services]\n")
	for _, peer := range []string{relaygw, intakesvc, authsvc} {
		if a := addrs[peer]; len(a) > 0 && peer != svc {
			fmt.Fprintf(&b, "%s = %q\n", peer, a[0])
		}
	}
	b.WriteString("\n" + s.opts.ExtraConfig)
	p := filepath.Join(s.dir, name+".toml")
	require.NoError(s.t, os.WriteFile(p, []byte(b.String()), 0o600))
	return p
}

// Intake is a client of the first intakesvc process.
func (s *System) Intake() intakesvcv1.IntakeServiceClient {
	return intakesvcv1.NewIntakeServiceClient(s.Dial(s.Procs[intakesvc][0].Addr, s.token))
}

// Auth is a client of the authsvc process.
func (s *System) Auth() authsvcv1.AuthServiceClient {
	return authsvcv1.NewAuthServiceClient(s.Dial(s.Procs[authsvc][0].Addr, s.token))
}

// Dial connects to addr with the bearer token ("" sends none), closed at
// cleanup.
func (s *System) Dial(addr, token string) *grpc.ClientConn {
	s.t.Helper()
	conn, err := grpcclient.Dial(addr, grpcclient.Options{Token: token})
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// OpenDispute has the fake Mostro open a dispute and returns its initiated
// revision's created_at.
func (s *System) OpenDispute(id, initiator string) int64 {
	s.t.Helper()
	s.Mostro.OpenDispute(fakemostro.DisputeSpec{DisputeID: id, Initiator: initiator})
	revs := s.Mostro.Revisions(id)
	return int64(revs[len(revs)-1].CreatedAt)
}

// WaitState polls intakesvc until the dispute is in state want.
func (s *System) WaitState(id string, want intakesvcv1.LifecycleState) *intakesvcv1.GetDisputeResponse {
	s.t.Helper()
	api := s.Intake()
	var last *intakesvcv1.GetDisputeResponse
	var lastErr error
	require.Eventually(s.t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		last, lastErr = api.GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: id})
		return lastErr == nil && last.GetDispute().GetLifecycleState() == want
	}, stall, 50*time.Millisecond, "dispute %s never reached %s (last %v, err %v)", id, want, last.GetDispute().GetLifecycleState(), lastErr)
	return last
}

// Count runs a count query on the system's database.
func (s *System) Count(sql string, args ...any) int {
	s.t.Helper()
	var n int
	require.NoError(s.t, s.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// WaitCount polls a count query until it returns n.
func (s *System) WaitCount(n int, sql string, args ...any) {
	s.t.Helper()
	got := -1
	require.Eventually(s.t, func() bool {
		if err := s.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&got); err != nil {
			return false
		}
		return got == n
	}, stall, 50*time.Millisecond, "want %d from %q (last %d)", n, sql, got)
}

func (s *System) dumpLogs() {
	var all []*Proc
	all = append(all, s.Relays...)
	for _, svc := range s.opts.Services {
		all = append(all, s.Procs[svc]...)
	}
	for _, p := range all {
		b, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 80 {
			lines = lines[len(lines)-80:]
		}
		s.t.Logf("---- %s (last %d lines of %s)\n%s", p.Name, len(lines), p.logPath, strings.Join(lines, "\n"))
	}
}

// Proc is one OS process of the system. It runs in its own process group;
// Kill and the test's cleanup signal the whole group.
type Proc struct {
	t *testing.T
	// Name names it in logs ("intakesvc-1").
	Name string
	// Addr is its gRPC address ("" for a relay).
	Addr    string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	// starts counts Start calls, to find this run's lines in the log.
	starts int
}

func (s *System) newProc(name string, args []string, addr string) *Proc {
	p := &Proc{t: s.t, Name: name, Addr: addr, args: args, logPath: filepath.Join(s.dir, name+".log"),
		env: append(cleanEnv(), "SERBERO_AUTH_TOKEN_FILE="+s.tokenFile)}
	s.t.Cleanup(func() { p.Kill() })
	return p
}

// cleanEnv is the test's environment without SERBERO_* variables, so a
// developer's settings never leak into the system under test.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SERBERO_") {
			out = append(out, kv)
		}
	}
	return out
}

// Start starts the process (again, after it exited), its output appended
// to its log file.
func (p *Proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			p.t.Fatalf("%s: Start while running", p.Name)
		}
	}
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	require.NoError(p.t, err)
	p.starts++
	fmt.Fprintf(log, "==== systest: start %d of %s\n", p.starts, p.Name)
	cmd := exec.Command(binary, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(p.t, cmd.Start(), "start %s", p.Name)
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		_ = log.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
}

// exited reports whether the current run ended, and how.
func (p *Proc) exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// signal sends sig to the process group of the current run, if running.
func (p *Proc) signal(sig syscall.Signal) (done chan struct{}, sent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil, false
	}
	select {
	case <-p.done:
		return p.done, false
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	return p.done, true
}

// Kill SIGKILLs the process group and waits for the exit.
func (p *Proc) Kill() {
	done, _ := p.signal(syscall.SIGKILL)
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(exitWait):
		p.t.Errorf("%s: still running %s after SIGKILL", p.Name, exitWait)
	}
}

// Terminate sends SIGTERM and waits up to within for the exit; it returns
// how long the exit took and the exit error (nil for status 0).
func (p *Proc) Terminate(within time.Duration) (time.Duration, error) {
	p.t.Helper()
	start := time.Now()
	done, sent := p.signal(syscall.SIGTERM)
	require.True(p.t, sent, "%s: not running", p.Name)
	select {
	case <-done:
	case <-time.After(within):
		p.t.Fatalf("%s: did not exit within %s of SIGTERM", p.Name, within)
	}
	_, err := p.exited()
	return time.Since(start), err
}

// Restart starts a process that exited and waits until it is healthy.
func (p *Proc) Restart() {
	p.t.Helper()
	p.Start()
	p.WaitHealthy(startWait)
}

// Log returns the process's log (every run).
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// WaitLog waits until the current run's log has a line containing sub.
func (p *Proc) WaitLog(sub string, within time.Duration) {
	p.t.Helper()
	marker := fmt.Sprintf("==== systest: start %d of %s", p.starts, p.Name)
	require.Eventually(p.t, func() bool {
		f, err := os.Open(p.logPath)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		current := false
		for sc.Scan() {
			line := sc.Text()
			if line == marker {
				current = true
			} else if current && strings.Contains(line, sub) {
				return true
			}
		}
		return false
	}, within, 20*time.Millisecond, "%s: no log line with %q", p.Name, sub)
}

// WaitHealthy polls grpc.health.v1 (overall status) until SERVING; it
// fails at once when the process exits.
func (p *Proc) WaitHealthy(within time.Duration) {
	p.t.Helper()
	conn, err := grpc.NewClient(p.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(p.t, err)
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(within)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		if done, err := p.exited(); done {
			p.t.Fatalf("%s exited while starting (%v); log:\n%s", p.Name, err, tail(p.Log(), 40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
		last = fmt.Sprint(resp.GetStatus(), err)
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not SERVING within %s (last: %s); log:\n%s", p.Name, within, last, tail(p.Log(), 40))
		}
		<-tick.C
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a 127.0.0.1 address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// errExit reports whether err is a process exit with status code.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

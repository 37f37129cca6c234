package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/escalationsvc"
	"github.com/serbero/serbero/services/intakesvc"
	"github.com/serbero/serbero/services/mediationsvc"
)

const (
	ctlToken = "ctl-token"
	// What a party wrote (the operator reads it in sessions get) and a
	// rationale text (never shown by ctl).
	ctlPartyText     = "I sent the fiat at 10:02, here is the reference"
	ctlRationaleText = "receipt matches the amount and the time"
	ctlRationaleID   = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
)

// ctlResult is one run of the command line.
type ctlResult struct {
	stdout, stderr string
	err            error
}

func runCmd(env map[string]string, args ...string) ctlResult {
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, IO{Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &errOut}, "test")
	return ctlResult{stdout: out.String(), stderr: errOut.String(), err: err}
}

// ctlFixture serves intakesvc, mediationsvc and escalationsvc from one
// gRPC server (as serve --target=all does) on a seeded database: dispute
// d-1 with a transition, a notification, a mediation session (transcript,
// classifications, a rationale) and a handoff.
type ctlFixture struct {
	addr    string
	handoff handoff.Enqueued
}

func newCtlFixture(t *testing.T) *ctlFixture {
	t.Helper()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	_, err := db.Pool.Exec(ctx, `
INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state, last_notified_at)
VALUES ('d-1', 'ev-1', 'mostro-pk', 'buyer', 100, 101, 'new', 102), ('d-2', 'ev-2', 'mostro-pk', 'seller', 200, 201, 'new', NULL);
INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at, trigger) VALUES ('d-1', NULL, 'new', 101, 'detected');
INSERT INTO notifications (dispute_id, solver_pubkey, sent_at, status, notif_type) VALUES ('d-1', 'solver-pk', 102, 'sent', 'initial');
INSERT INTO mediation_sessions (session_id, dispute_id, state, round_count, prompt_bundle_id, policy_hash, started_at, last_transition_at,
                                current_classification, current_confidence)
VALUES ('s-1', 'd-1', 'escalation_recommended', 2, 'phase3-default', 'hash-1', 110, 150, 'conflicting_claims', 0.9);
INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, inner_event_created_at, content, persisted_at) VALUES
  ('s-1', 'outbound', 'buyer', 'shared-b', 'out-1', 120, 'Hello, this is Serbero', 120),
  ('s-1', 'inbound',  'buyer', 'shared-b', 'in-1',  130, '`+ctlPartyText+`', 131);
INSERT INTO reasoning_rationales (rationale_id, rationale_text, generated_at) VALUES ('`+ctlRationaleID+`', '`+ctlRationaleText+`', 112);
INSERT INTO reasoning_rationale_occurrences (rationale_id, dispute_id, session_id, operation, provider, model, prompt_bundle_id, policy_hash, generated_at, occurrence_key)
VALUES ('`+ctlRationaleID+`', 'd-1', 's-1', 'classify', 'openai', 'gpt-x', 'phase3-default', 'hash-1', 112, 'k1');
INSERT INTO mediation_events (session_id, kind, payload_json, rationale_id, prompt_bundle_id, policy_hash, occurred_at) VALUES
  (NULL, 'start_attempt_started', '{"dispute_id":"d-1","trigger":"detected"}', NULL, NULL, NULL, 105),
  ('s-1', 'session_opened', '{}', NULL, 'phase3-default', 'hash-1', 110),
  ('s-1', 'classification_produced', '{"classification":"conflicting_claims","confidence":0.9,"rationale_id":"`+ctlRationaleID+`"}',
   '`+ctlRationaleID+`', 'phase3-default', 'hash-1', 140);`)
	require.NoError(t, err)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	enq, err := handoff.Enqueue(ctx, tx, handoff.Package{
		DisputeID: "d-1", SessionID: "s-1", Trigger: "conflicting_claims", EvidenceRefs: []string{},
		PromptBundleID: "phase3-default", PolicyHash: "hash-1", RationaleRefs: []string{ctlRationaleID}, AssembledAt: 150,
	}, handoff.Meta{OccurredAt: 150})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	log, _ := logtest.New()
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second, AuthToken: ctlToken})
	require.NoError(t, err)
	icfg := intakesvc.DefaultConfig()
	icfg.MostroPubkey = strings.Repeat("a", 64)
	isvc, err := intakesvc.New(intakesvc.Deps{Config: icfg, Logger: log, Pool: db.Pool, Relaygw: idleRelaygw(t)})
	require.NoError(t, err)
	isvc.Register(srv.GRPC())
	msvc, err := mediationsvc.New(mediationsvc.Deps{Logger: log, Pool: db.Pool})
	require.NoError(t, err)
	msvc.Register(srv.GRPC())
	esvc, err := escalationsvc.New(escalationsvc.Deps{
		Config: escalationsvc.Config{DispatchInterval: time.Second, ClaimTimeout: time.Minute}, Logger: log, Pool: db.Pool,
	})
	require.NoError(t, err)
	esvc.Register(srv.GRPC())
	lis := listen(t)
	srv.Start(lis)
	t.Cleanup(srv.Stop)
	return &ctlFixture{addr: lis.Addr().String(), handoff: enq}
}

// idleRelaygw is a relaygw client that is never called (intakesvc's API
// reads the database; only its Run streams from relaygw).
func idleRelaygw(t *testing.T) relaygwv1.RelayGatewayServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(freePort(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return relaygwv1.NewRelayGatewayServiceClient(conn)
}

func (f *ctlFixture) env() map[string]string {
	return map[string]string{"SERBERO_AUTH_TOKEN": ctlToken}
}

func (f *ctlFixture) ctl(t *testing.T, args ...string) string {
	t.Helper()
	r := runCmd(f.env(), append([]string{"ctl", "--addr", f.addr}, args...)...)
	require.NoError(t, r.err, r.stderr)
	return r.stdout
}

// oneJSON decodes s as exactly one JSON document.
func oneJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	var v map[string]any
	require.NoError(t, dec.Decode(&v), s)
	var extra any
	require.ErrorIs(t, dec.Decode(&extra), io.EOF, "exactly one JSON document:\n%s", s)
	return v
}

func obj(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	require.True(t, ok, "want an object, got %T", v)
	return m
}

func arr(t *testing.T, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	require.True(t, ok, "want a list, got %T", v)
	return a
}

func fmtAny(v any) string { return fmt.Sprint(v) }

// oneYAML decodes s as exactly one YAML document.
func oneYAML(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(s))
	var v map[string]any
	require.NoError(t, dec.Decode(&v), s)
	var extra any
	require.ErrorIs(t, dec.Decode(&extra), io.EOF, "exactly one YAML document:\n%s", s)
	return v
}

func TestCtlOutputFormats(t *testing.T) {
	t.Parallel()
	f := newCtlFixture(t)
	hid := strconv.FormatInt(f.handoff.ID, 10)
	tests := []struct {
		args []string
		// keys the JSON/YAML document has; first line of the table.
		keys  []string
		table string
	}{
		{[]string{"disputes", "list"}, []string{"disputes"}, `^DISPUTE\s+STATE\s+INITIATOR\s+STATUS\s+DETECTED`},
		{[]string{"disputes", "get", "d-1"}, []string{"dispute", "transitions", "notifications", "sessions", "handoffs", "auditEvents"}, `^dispute_id: d-1$`},
		{[]string{"disputes", "quarantine"}, nil, `^EVENT\s+CURSOR\s+DISPUTE\s+CLASS`},
		{[]string{"sessions", "list"}, []string{"sessions"}, `^SESSION\s+DISPUTE\s+STATE\s+ROUNDS\s+CLASSIFICATION`},
		{[]string{"sessions", "get", "s-1"}, []string{"session", "transcript", "classifications", "rationales", "events"}, `^session_id: s-1$`},
		{[]string{"handoffs", "list"}, []string{"handoffs"}, `^ID\s+DISPUTE\s+TRIGGER\s+STATUS\s+ATTEMPTS`},
		{[]string{"handoffs", "get", hid}, []string{"handoff"}, `^handoff:$`},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, "_")
		t.Run(name+"/json", func(t *testing.T) {
			t.Parallel()
			before := f.ctl(t, append([]string{"-o", "json"}, tt.args...)...)
			doc := oneJSON(t, before)
			for _, k := range tt.keys {
				require.Contains(t, doc, k)
			}
			require.Equal(t, before, f.ctl(t, append(tt.args, "-o", "json")...), "-o after the command")
			require.Equal(t, before, f.ctl(t, append(tt.args, "--output=json")...))
			require.Equal(t, before, f.ctl(t, append(tt.args, "--json")...), "--json is -o json")
		})
		t.Run(name+"/yaml", func(t *testing.T) {
			t.Parallel()
			doc := oneYAML(t, f.ctl(t, append(tt.args, "-o", "yaml")...))
			for _, k := range tt.keys {
				require.Contains(t, doc, k)
			}
		})
		t.Run(name+"/table", func(t *testing.T) {
			t.Parallel()
			out := f.ctl(t, tt.args...)
			require.Regexp(t, tt.table, strings.SplitN(out, "\n", 2)[0], out)
			require.Equal(t, out, f.ctl(t, append(tt.args, "-o", "table")...))
		})
	}
}

// disputes get is one document with the dispute's phase 1-2 story, its
// mediation sessions, its handoffs and its audit trail.
func TestCtlDisputesGet(t *testing.T) {
	t.Parallel()
	f := newCtlFixture(t)
	doc := oneJSON(t, f.ctl(t, "disputes", "get", "d-1", "-o", "json"))
	require.Equal(t, "d-1", obj(t, doc["dispute"])["disputeId"])
	require.Len(t, doc["transitions"], 1)
	require.Len(t, doc["notifications"], 1)
	sessions := arr(t, doc["sessions"])
	require.Len(t, sessions, 1)
	require.Equal(t, "s-1", obj(t, sessions[0])["sessionId"])
	handoffs := arr(t, doc["handoffs"])
	require.Len(t, handoffs, 1)
	require.Equal(t, strconv.FormatInt(f.handoff.ID, 10), obj(t, handoffs[0])["id"])
	var kinds []string
	for _, e := range arr(t, doc["auditEvents"]) {
		kinds = append(kinds, fmtAny(obj(t, e)["kind"]))
	}
	require.Equal(t, []string{"start_attempt_started", "session_opened", "classification_produced", "handoff_prepared"}, kinds)
	require.NotContains(t, doc, "unavailable")

	// d-2 has none of phase 3 and 4: empty lists, not missing parts.
	doc = oneJSON(t, f.ctl(t, "disputes", "get", "d-2", "-o", "json"))
	require.Equal(t, []any{}, doc["sessions"])
	require.Equal(t, []any{}, doc["handoffs"])

	table := f.ctl(t, "disputes", "get", "d-1")
	for _, want := range []string{"\nTransitions:\n", "\nNotifications:\n", "\nMediation sessions:\n", "\nHandoffs:\n", "\nAudit trail:\n"} {
		require.Contains(t, table, want)
	}
	require.Regexp(t, `(?m)^  1\s+-\s+new\s+1970-01-01T00:01:41Z\s+detected$`, table, "the first transition, from no state")
	require.Regexp(t, `(?m)^  s-1\s+d-1\s+escalation_recommended\s+2\s+conflicting_claims \(0\.90\)`, table)
	require.Regexp(t, `(?m)^  `+strconv.FormatInt(f.handoff.ID, 10)+`\s+d-1\s+conflicting_claims\s+pending`, table)

	r := runCmd(f.env(), "ctl", "--addr", f.addr, "disputes", "get", "nope")
	require.Error(t, r.err)
	require.Equal(t, 1, ExitCode(r.err))
	require.Contains(t, r.err.Error(), `dispute "nope" not found`)
}

// With mediationsvc and escalationsvc out of reach, disputes get still
// prints the dispute, with the missing parts null and the reason given.
func TestCtlDisputesGetPartial(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	_, err := db.Pool.Exec(t.Context(), `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ('d-1', 'ev-1', 'mostro-pk', 'buyer', 100, 101)`)
	require.NoError(t, err)
	log, _ := logtest.New()
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second, AuthToken: ctlToken})
	require.NoError(t, err)
	icfg := intakesvc.DefaultConfig()
	icfg.MostroPubkey = strings.Repeat("a", 64)
	isvc, err := intakesvc.New(intakesvc.Deps{Config: icfg, Logger: log, Pool: db.Pool, Relaygw: idleRelaygw(t)})
	require.NoError(t, err)
	isvc.Register(srv.GRPC())
	lis := listen(t)
	srv.Start(lis)
	t.Cleanup(srv.Stop)

	env := map[string]string{
		"SERBERO_AUTH_TOKEN":         ctlToken,
		"SERBERO_INTAKESVC_ADDR":     lis.Addr().String(),
		"SERBERO_MEDIATIONSVC_ADDR":  lis.Addr().String(), // serves intakesvc only
		"SERBERO_ESCALATIONSVC_ADDR": freePort(t),         // nobody
	}
	r := runCmd(env, "ctl", "disputes", "get", "d-1", "-o", "json")
	require.NoError(t, r.err, r.stderr)
	doc := oneJSON(t, r.stdout)
	require.Equal(t, "d-1", obj(t, doc["dispute"])["disputeId"])
	require.Nil(t, doc["sessions"], "unknown, not empty")
	require.Nil(t, doc["handoffs"])
	require.Nil(t, doc["auditEvents"])
	un := obj(t, doc["unavailable"])
	require.Contains(t, un["mediationsvc"], "does not serve mediationsvc's API")
	require.Contains(t, un["mediationsvc"], "SERBERO_MEDIATIONSVC_ADDR")
	require.Contains(t, un["escalationsvc"], "cannot reach escalationsvc at "+env["SERBERO_ESCALATIONSVC_ADDR"])
	require.Contains(t, r.stderr, "warning: ")
}

// sessions get shows what an operator needs of a session, rationale ids
// but never rationale text.
func TestCtlSessions(t *testing.T) {
	t.Parallel()
	f := newCtlFixture(t)
	out := f.ctl(t, "sessions", "get", "s-1")
	require.Contains(t, out, "state: escalation_recommended\n")
	require.Contains(t, out, "round_count: 2\n")
	require.Regexp(t, `(?m)^  1970-01-01T00:02:00Z\s+outbound\s+buyer\s+-\s+Hello, this is Serbero$`, out)
	require.Regexp(t, `(?m)^  1970-01-01T00:02:10Z\s+inbound\s+buyer\s+-\s+`+ctlPartyText+`$`, out)
	require.Regexp(t, `(?m)^  1970-01-01T00:02:20Z\s+classification_produced\s+conflicting_claims\s+0\.90\s+`+ctlRationaleID+`$`, out)
	require.Regexp(t, `(?m)^  `+ctlRationaleID+`\s+classify\s+openai\s+gpt-x`, out)
	for _, format := range []string{"table", "json", "yaml"} {
		require.NotContains(t, f.ctl(t, "sessions", "get", "s-1", "-o", format), ctlRationaleText, format)
	}
	doc := oneJSON(t, f.ctl(t, "sessions", "get", "s-1", "-o", "json"))
	require.Len(t, doc["transcript"], 2)
	require.Equal(t, ctlPartyText, obj(t, arr(t, doc["transcript"])[1])["content"])

	list := f.ctl(t, "sessions", "list", "--dispute", "d-1", "--state", "escalation_recommended")
	require.Len(t, strings.Split(strings.TrimSpace(list), "\n"), 2, list)
	list = f.ctl(t, "sessions", "list", "--state", "closed")
	require.Len(t, strings.Split(strings.TrimSpace(list), "\n"), 1, "header only: %s", list)

	r := runCmd(f.env(), "ctl", "--addr", f.addr, "sessions", "list", "--state", "bogus")
	require.Equal(t, 2, ExitCode(r.err))
	require.Contains(t, r.err.Error(), `unknown session state "bogus"`)
	r = runCmd(f.env(), "ctl", "--addr", f.addr, "sessions", "get", "nope")
	require.Equal(t, 1, ExitCode(r.err))
	require.Contains(t, r.err.Error(), "session nope not found")
}

func TestCtlHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ctl", "-h"}, "usage: serbero ctl <command> [flags]"},
		{[]string{"ctl", "--help"}, "  sessions get SESSION_ID"},
		{[]string{"ctl", "help"}, "  disputes get DISPUTE_ID"},
		{[]string{"ctl", "-o", "json", "--help"}, "usage: serbero ctl <command>"},
		{[]string{"ctl", "disputes", "-h"}, "usage: serbero ctl disputes <command> [flags]"},
		{[]string{"ctl", "disputes", "help"}, "  quarantine [--limit N]"},
		{[]string{"ctl", "disputes", "get", "-h"}, "usage: serbero ctl disputes get DISPUTE_ID [flags]"},
		{[]string{"ctl", "disputes", "get", "d-1", "--help"}, "usage: serbero ctl disputes get DISPUTE_ID [flags]"},
		{[]string{"ctl", "sessions", "list", "-h"}, "-dispute ID"},
		{[]string{"ctl", "handoffs", "requeue", "-h"}, "usage: serbero ctl handoffs requeue HANDOFF_ID"},
		{[]string{"ctl", "auth", "state", "-h"}, "usage: serbero ctl auth state [flags]"},
		{[]string{"ctl", "relays", "--help"}, "usage: serbero ctl relays [flags]"},
		{[]string{"serve", "-h"}, "-target"},
		{[]string{"health", "--help"}, "usage: serbero health"},
		{[]string{"migrate", "-h"}, "usage"},
		{[]string{"--help"}, "usage: serbero <command>"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			t.Parallel()
			r := runCmd(nil, tt.args...) // no token needed for help
			require.NoError(t, r.err)
			require.Equal(t, 0, ExitCode(r.err))
			require.Contains(t, r.stdout, tt.want)
			require.Empty(t, r.stderr)
		})
	}
}

func TestCtlUsageErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SERBERO_AUTH_TOKEN": ctlToken}
	tests := []struct {
		args      []string
		err       string
		usageLine string
	}{
		{[]string{"ctl"}, "serbero ctl needs a command", "usage: serbero ctl <command>"},
		{[]string{"ctl", "nope"}, `unknown command "nope" for "serbero ctl"`, "usage: serbero ctl <command>"},
		{[]string{"ctl", "disputes"}, "serbero ctl disputes needs a command: list, get, quarantine", "usage: serbero ctl disputes <command>"},
		{[]string{"ctl", "disputes", "nope"}, `unknown command "nope" for "serbero ctl disputes"`, "usage: serbero ctl disputes <command>"},
		{[]string{"ctl", "sessions", "get"}, "serbero ctl sessions get needs SESSION_ID", "usage: serbero ctl sessions get SESSION_ID"},
		{[]string{"ctl", "sessions", "get", "a", "b"}, "needs SESSION_ID", "usage: serbero ctl sessions get"},
		{[]string{"ctl", "relays", "extra"}, "serbero ctl relays takes no arguments", "usage: serbero ctl relays"},
		{[]string{"ctl", "--bogus", "relays"}, "flag provided but not defined: -bogus", "usage: serbero ctl <command>"},
		{[]string{"ctl", "disputes", "list", "--bogus"}, "flag provided but not defined: -bogus", "usage: serbero ctl disputes list"},
		{[]string{"ctl", "-o", "xml", "relays"}, `unknown output format "xml": use -o table, -o json or -o yaml`, ""},
		{[]string{"ctl", "disputes", "list", "--state", "bogus", "--addr", "127.0.0.1:1"}, `unknown state "bogus"`, ""},
		{[]string{"ctl", "handoffs", "get", "x"}, `bad handoff id "x"`, ""},
		{[]string{"ctl", "disputes", "list", "--limit", "0"}, "--limit must be between 1 and 1000", ""},
		{[]string{"nope"}, `unknown command "nope"`, "usage: serbero <command>"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			t.Parallel()
			r := runCmd(env, tt.args...)
			require.Error(t, r.err)
			require.Equal(t, 2, ExitCode(r.err), r.err.Error())
			require.Contains(t, r.err.Error(), tt.err)
			require.Empty(t, r.stdout, "usage goes to stderr")
			if tt.usageLine != "" {
				require.Contains(t, r.stderr, tt.usageLine)
			}
		})
	}
}

// A missing token is refused before anything is dialled, naming the
// variable to set.
func TestCtlMissingToken(t *testing.T) {
	t.Parallel()
	r := runCmd(map[string]string{}, "ctl", "--addr", freePort(t), "disputes", "list")
	require.Error(t, r.err)
	require.Equal(t, 1, ExitCode(r.err))
	require.Contains(t, r.err.Error(), "no service token: set SERBERO_AUTH_TOKEN")
	require.Contains(t, r.err.Error(), "SERBERO_AUTH_TOKEN_FILE")
	require.Contains(t, r.err.Error(), "--token-file")

	missing := filepath.Join(t.TempDir(), "token")
	r = runCmd(map[string]string{}, "ctl", "--token-file", missing, "relays")
	require.Equal(t, 1, ExitCode(r.err))
	require.Contains(t, r.err.Error(), "SERBERO_AUTH_TOKEN_FILE")
	require.ErrorIs(t, r.err, os.ErrNotExist)
}

// An address where nothing listens fails within the connection budget
// (3 s, not the 30 s of a call) with the address and what to check.
func TestCtlFailsFastOnUnreachableAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		svc  string
	}{
		{[]string{"disputes", "list"}, "intakesvc"},
		{[]string{"sessions", "get", "s-1"}, "mediationsvc"},
		{[]string{"handoffs", "list"}, "escalationsvc"},
		{[]string{"auth", "state"}, "authsvc"},
		{[]string{"relays"}, "relaygw"},
	}
	for _, tt := range tests {
		t.Run(tt.svc, func(t *testing.T) {
			t.Parallel()
			addr := freePort(t)
			r := runCmd(map[string]string{"SERBERO_AUTH_TOKEN": ctlToken}, append([]string{"ctl", "--addr", addr}, tt.args...)...)
			require.Error(t, r.err)
			require.Equal(t, 1, ExitCode(r.err))
			require.Contains(t, r.err.Error(), "cannot reach "+tt.svc+" at "+addr+" within 3s")
			require.Contains(t, r.err.Error(), "connection refused")
			require.Contains(t, r.err.Error(), "SERBERO_"+strings.ToUpper(tt.svc)+"_ADDR")
		})
	}
}

// A service that is up but silent (accepts TCP, never speaks HTTP/2) is
// given up on after the connection budget too.
func TestCtlFailsFastOnSilentAddress(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { lis.Close() })
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	r := runCmd(map[string]string{"SERBERO_AUTH_TOKEN": ctlToken}, "ctl", "--addr", lis.Addr().String(), "relays")
	require.Error(t, r.err)
	require.Equal(t, 1, ExitCode(r.err))
	require.Contains(t, r.err.Error(), "cannot reach relaygw at "+lis.Addr().String()+" within 3s")
}

// A wrong token is named as such.
func TestCtlWrongToken(t *testing.T) {
	t.Parallel()
	f := newCtlFixture(t)
	r := runCmd(map[string]string{"SERBERO_AUTH_TOKEN": "wrong"}, "ctl", "--addr", f.addr, "disputes", "list")
	require.Error(t, r.err)
	require.Equal(t, 1, ExitCode(r.err))
	require.Contains(t, r.err.Error(), "refused the service token: set SERBERO_AUTH_TOKEN")
}

func TestJSONToYAMLKeepsOrderAndTypes(t *testing.T) {
	t.Parallel()
	y, err := jsonToYAML([]byte(`{"b":"1","a":true,"c":"true","d":["x"],"e":{"z":"multi\nline"},"f":null,"g":1.5}`))
	require.NoError(t, err)
	require.Equal(t, "b: \"1\"\na: true\nc: \"true\"\nd:\n  - x\ne:\n  z: |-\n    multi\n    line\nf: null\ng: 1.5\n", string(y))
}

func TestParseInterspersed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args    []string
		pos     []string
		output  string
		wantErr bool
	}{
		{[]string{"ID"}, []string{"ID"}, "table", false},
		{[]string{"ID", "-o", "json"}, []string{"ID"}, "json", false},
		{[]string{"-o", "yaml", "ID"}, []string{"ID"}, "yaml", false},
		{[]string{"A", "--output=json", "B"}, []string{"A", "B"}, "json", false},
		{[]string{"--", "-o", "json"}, []string{"-o", "json"}, "table", false},
		{[]string{"ID", "--", "--x"}, []string{"ID", "--x"}, "table", false},
		{[]string{"ID", "-o"}, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			t.Parallel()
			g := ctlGlobals{output: formatTable}
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			g.register(fs)
			pos, err := parseInterspersed(fs, tt.args)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.pos, pos)
			require.Equal(t, tt.output, g.output)
		})
	}
}

package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
	"github.com/serbero/serbero/pkg/mostro/transport"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

const devWait = 15 * time.Second

// bgCommand is a long-running command started in the background.
type bgCommand struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan error
}

func startCommand(t *testing.T, args ...string) *bgCommand {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &bgCommand{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- Run(ctx, args, IO{Getenv: func(string) string { return "" }, Stdout: c.stdout, Stderr: c.stderr}, "test")
	}()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// wait waits until stdout matches re and returns the first submatch.
func (c *bgCommand) wait(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	require.Eventually(t, func() bool { return re.MatchString(c.stdout.String()) }, devWait, 10*time.Millisecond,
		"stdout: %s\nstderr: %s", c.stdout.String(), c.stderr.String())
	m := re.FindStringSubmatch(c.stdout.String())
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

// stop cancels the command and requires it to end without error.
func (c *bgCommand) stop(t *testing.T) {
	t.Helper()
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok {
			require.NoError(t, err, c.stderr.String())
			close(c.done)
		}
	case <-time.After(devWait):
		t.Fatal("command did not stop")
	}
}

// runCommand runs a command to completion.
func runCommand(args ...string) (stdout, stderr string, err error) {
	var out, errOut syncBuffer
	err = Run(context.Background(), args, IO{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut}, "test")
	return out.String(), errOut.String(), err
}

// serberoSide is Serbero's end of the protocol, played with pkg/mostro
// directly: it takes disputes and chats with the parties.
type serberoSide struct {
	t    *testing.T
	keys keys.Keys
	conn *relayconn.Conn

	mu       sync.Mutex
	received []transport.Received
}

func newSerberoSide(t *testing.T, url string, k keys.Keys) *serberoSide {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := relayconn.Dial(ctx, url, relayconn.Options{})
	require.NoError(t, err)
	s := &serberoSide{t: t, keys: k, conn: conn}
	since := nostr.Timestamp(time.Now().Add(-partyLookback).Unix())
	sub, err := conn.Subscribe(ctx, nostr.Filters{{Kinds: []int{mostro.KindDirect, mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": {k.PublicKey()}}, Since: &since}}, "serbero")
	require.NoError(t, err)
	eachDone := make(chan struct{})
	go func() {
		defer close(eachDone)
		_ = sub.Each(ctx, func(it relayconn.Item) {
			if it.EOSE {
				return
			}
			rcv, err := transport.Open(*it.Event, k, transport.OpenOptions{})
			if err != nil {
				return
			}
			s.mu.Lock()
			s.received = append(s.received, rcv)
			s.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		sub.Close()
		<-eachDone
		conn.Close()
	})
	return s
}

// take sends admin-take-dispute as relaygw does: version and first-contact
// PoW from the node's info event.
func (s *serberoSide) take(info mostro.NodeInfo, disputeID string) {
	s.t.Helper()
	msg, err := mostro.NewAdminTakeDispute(uint8(info.ProtocolVersion), disputeID)
	require.NoError(s.t, err)
	evt, err := transport.Build(context.Background(), transport.Version(info.ProtocolVersion), msg, s.keys, info.Pubkey,
		transport.Options{PoW: info.PoWFirstContact, Expiration: time.Now().Add(time.Hour)})
	require.NoError(s.t, err)
	require.NoError(s.t, s.conn.Publish(context.Background(), evt))
}

// waitMessage waits for a protocol message with action about id.
func (s *serberoSide) waitMessage(action mostro.Action, id string) transport.Received {
	s.t.Helper()
	var got transport.Received
	require.Eventually(s.t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, r := range s.received {
			if r.Message.Kind.Action == action && r.Message.Kind.ID == id {
				got = r
				return true
			}
		}
		return false
	}, devWait, 10*time.Millisecond, "no %s for %s", action, id)
	return got
}

// say sends a chat line to a party and returns its inner event id.
func (s *serberoSide) say(party, text string) string {
	s.t.Helper()
	ch, err := chat.Derive(s.keys, party)
	require.NoError(s.t, err)
	outer, inner, err := chat.BuildV2(ch, s.keys, text, time.Now())
	require.NoError(s.t, err)
	require.NoError(s.t, s.conn.Publish(context.Background(), outer))
	return inner.ID
}

// devSetup is init-config's files in a temporary directory, as make dev
// writes them in .data.
type devSetup struct {
	dir, cfg, mostroKey, state string
	serbero                    keys.Keys
	mostroPub                  string
}

func newDevSetup(t *testing.T) devSetup {
	t.Helper()
	dir := t.TempDir()
	d := devSetup{dir: dir, cfg: filepath.Join(dir, "dev-config.toml"), mostroKey: filepath.Join(dir, "dev-mostro.key"),
		state: filepath.Join(dir, "dev-parties.json")}
	_, _, err := runCommand("devtool", "init-config", "--out", d.cfg)
	require.NoError(t, err)
	loaded, err := config.Load(config.LoadOptions{Path: d.cfg, Target: config.TargetRelaygw, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	d.serbero, err = keys.Parse(loaded.PrivateKey.Reveal())
	require.NoError(t, err)
	d.mostroPub = loaded.Config.Mostro.Pubkey
	return d
}

var (
	controlLine = regexp.MustCompile(`control http://(127\.0\.0\.1:\d+)`)
	simLine     = regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/v1/chat/completions`)
	openedLine  = regexp.MustCompile(`opened dispute ([0-9a-f-]{36})`)
	sentLine    = regexp.MustCompile(`sent line ([0-9a-f]{64})`)
)

// The newcomer's mediation, minus the engine: the dev Mostro answers
// Serbero's take like mostrod, the parties' trade keys reach Serbero in
// SolverDisputeInfo, `party --say` produces lines Serbero's validator
// accepts as that party's, and `party --read/--listen` decrypt Serbero's.
func TestDevtoolMostroAndParties(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	d := newDevSetup(t)
	node := startCommand(t, "devtool", "mostro", "--relay", r.URL(), "--config", d.cfg, "--mostro-key", d.mostroKey, "--control", "127.0.0.1:0")
	control := node.wait(t, controlLine)
	sim := startCommand(t, "devtool", "reasoning-sim", "--listen", "127.0.0.1:0")
	simAddr := sim.wait(t, simLine)

	// The info event: the dev config's Mostro key, protocol v2.
	infos := r.WaitEvents(t, devWait, nostr.Filter{Kinds: []int{mostro.KindInfo}, Authors: []string{d.mostroPub}}, 1)
	info, err := mostro.ParseNodeInfo(*infos[0])
	require.NoError(t, err)
	require.Equal(t, mostro.ProtocolV2, info.ProtocolVersion)

	out, _, err := runCommand("devtool", "open-dispute", "--mostro-control", control, "--reasoning-sim", simAddr,
		"--state", d.state, "--outcome", "escalate")
	require.NoError(t, err)
	id := openedLine.FindStringSubmatch(out)[1]
	fi, err := os.Stat(d.state)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	st, err := loadParties(d.state)
	require.NoError(t, err)
	require.Equal(t, d.mostroPub, st.MostroPubkey)
	parties := st.Disputes[id]
	buyer, seller := parties.Buyer.Pubkey, parties.Seller.Pubkey
	require.NotEqual(t, buyer, seller)
	revs := r.WaitEvents(t, devWait, nostr.Filter{Kinds: []int{mostro.KindDispute}, Authors: []string{d.mostroPub}, Tags: nostr.TagMap{"d": {id}}}, 1)
	rev, err := mostro.ParseDisputeEvent(*revs[0])
	require.NoError(t, err)
	require.Equal(t, mostro.DisputeInitiated, rev.Status)

	// The outcome is scripted on the simulator for this dispute only.
	require.Equal(t, "unclear", classifyOnSim(t, simAddr, id), "ask_clarification")
	require.Equal(t, "suspected_fraud", classifyOnSim(t, simAddr, id))

	// A party cannot chat before the dispute is taken.
	_, _, err = runCommand("devtool", "party", "--role", "buyer", "--dispute", id, "--say", "hello?", "--state", d.state,
		"--relay", r.URL(), "--wait", "0s")
	require.ErrorContains(t, err, "not taken within 0s")

	// Serbero takes it: admin-took-dispute with the parties' trade keys,
	// the peer notice to both parties, the in-progress revision.
	serbero := newSerberoSide(t, r.URL(), d.serbero)
	serbero.take(info, id)
	took := serbero.waitMessage(mostro.ActionAdminTookDispute, id)
	require.Equal(t, d.mostroPub, took.Sender)
	sdi := took.Message.Kind.Payload.Dispute.Info
	require.Equal(t, parties.OrderID, sdi.ID)
	require.Equal(t, buyer, *sdi.BuyerPubkey)
	require.Equal(t, seller, *sdi.SellerPubkey)
	require.Eventually(t, func() bool {
		evs := r.Events(nostr.Filter{Kinds: []int{mostro.KindDispute}, Tags: nostr.TagMap{"d": {id}}})
		return len(evs) == 1 && evs[0].Tags.Find("s")[1] == string(mostro.DisputeInProgress)
	}, devWait, 10*time.Millisecond, "in-progress revision")
	var view disputeView
	require.NoError(t, postJSON(context.Background(), http.MethodGet, "http://"+control+"/disputes/"+id, nil, &view))
	require.Equal(t, d.serbero.PublicKey(), view.Solver)
	node.wait(t, regexp.MustCompile(`sent admin-took-dispute `+parties.OrderID))

	// The buyer says something: a v2 line on the buyer's channel that
	// Serbero's validator accepts as the buyer's.
	out, _, err = runCommand("devtool", "party", "--role", "buyer", "--say", "I paid by SEPA at 10:02", "--state", d.state, "--relay", r.URL())
	require.NoError(t, err, "the newest dispute by default")
	lineID := sentLine.FindStringSubmatch(out)[1]
	ch, err := chat.Derive(d.serbero, buyer)
	require.NoError(t, err)
	outers := r.WaitEvents(t, devWait, nostr.Filter{Kinds: []int{mostro.KindDirect}, Authors: []string{ch.SignPubkey()}}, 1)
	line, err := chat.Validator{}.Validate(*outers[0], ch, buyer)
	require.NoError(t, err)
	require.Equal(t, buyer, line.Author())
	require.Equal(t, "I paid by SEPA at 10:02", line.Text())
	require.Equal(t, lineID, line.Inner.ID)
	require.Equal(t, chat.FormV2, line.Form)
	_, err = chat.Validator{}.Validate(*outers[0], ch, seller)
	require.ErrorIs(t, err, chat.ErrForgedSigner, "the buyer's line is not the seller's")

	// Serbero asks the seller; the seller reads it, answers, and reads the
	// whole conversation.
	serbero.say(seller, "Round 1. Seller: did the payment arrive?")
	out, _, err = runCommand("devtool", "party", "--role", "seller", "--dispute", id, "--read", "--state", d.state, "--relay", r.URL())
	require.NoError(t, err)
	require.Contains(t, out, "Serbero:\nRound 1. Seller: did the payment arrive?")
	_, _, err = runCommand("devtool", "party", "--role", "seller", "--dispute", id, "--say", "yes, at 10:30", "--state", d.state, "--relay", r.URL())
	require.NoError(t, err)
	out, _, err = runCommand("devtool", "party", "--role", "seller", "--dispute", id, "--read", "--state", d.state, "--relay", r.URL())
	require.NoError(t, err)
	require.Contains(t, out, "Serbero:\nRound 1. Seller: did the payment arrive?\n")
	require.Contains(t, out, "seller (you):\nyes, at 10:30\n")
	require.NotContains(t, out, "I paid", "the buyer's channel is not the seller's")

	// --listen keeps following: a line Serbero sends later shows up.
	listen := startCommand(t, "devtool", "party", "--role", "buyer", "--dispute", id, "--listen", "--state", d.state, "--relay", r.URL())
	listen.wait(t, regexp.MustCompile(`buyer \(you\):\nI paid by SEPA at 10:02\n`))
	serbero.say(buyer, "Round 1. Buyer: which bank did you pay from?")
	listen.wait(t, regexp.MustCompile(`Serbero:\nRound 1\. Buyer: which bank did you pay from\?\n`))
	listen.stop(t)
}

// classifyOnSim asks the simulator to classify a dispute and returns the
// classification.
func classifyOnSim(t *testing.T, addr, disputeID string) string {
	t.Helper()
	body := `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"## Session metadata\ndispute_id: ` +
		disputeID + `\n\n## Output contract\n\"classification\""}],"response_format":{"type":"json_object"}}`
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var completion struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal(raw, &completion))
	require.Len(t, completion.Choices, 1)
	var c struct {
		Classification string `json:"classification"`
	}
	require.NoError(t, json.Unmarshal([]byte(completion.Choices[0].Message.Content), &c))
	return c.Classification
}

// Without --script the simulator drives every dispute to a summary: ask,
// ask again, summarize.
func TestReasoningSimDevScript(t *testing.T) {
	t.Parallel()
	sim := startCommand(t, "devtool", "reasoning-sim", "--listen", "127.0.0.1:0")
	addr := sim.wait(t, simLine)
	for _, want := range []string{"unclear", "unclear", "coordination_failure_resolvable", "coordination_failure_resolvable"} {
		require.Equal(t, want, classifyOnSim(t, addr, "d-1"))
	}
	require.Equal(t, "unclear", classifyOnSim(t, addr, "d-2"), "per dispute")
	err := postJSON(context.Background(), http.MethodPut, "http://"+addr+"/dev/disputes/d-3", json.RawMessage(`{"oops":1}`), nil)
	require.ErrorContains(t, err, "400")
	require.NoError(t, postJSON(context.Background(), http.MethodPut, "http://"+addr+"/dev/disputes/d-1", json.RawMessage(outcomeScripts[outcomeEscalateAtOpen]), nil))
	require.Equal(t, "suspected_fraud", classifyOnSim(t, addr, "d-1"), "a scripted dispute restarts its sequence")
}

func TestDevtoolMostroErrors(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	d := newDevSetup(t)
	other := filepath.Join(d.dir, "other.key")
	require.NoError(t, os.WriteFile(other, []byte(keys.Generate().RevealSecretHex()+"\n"), 0o600))
	dead := relay.Start(t)
	deadURL := dead.URL()
	dead.Stop()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"key is not the config's mostro", []string{"--relay", r.URL(), "--mostro-key", other}, "Serbero would ignore this node"},
		{"no relay", []string{"--relay", deadURL, "--wait", "0s"}, "did not answer within 0s"},
		{"bad permission", []string{"--serbero-permission", "admin"}, "--serbero-permission"},
		{"bad version", []string{"--protocol-version", "3"}, "--protocol-version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"devtool", "mostro", "--config", d.cfg, "--mostro-key", d.mostroKey, "--control", "127.0.0.1:0"}, tc.args...)
			_, _, err := runCommand(args...)
			require.ErrorContains(t, err, tc.want)
		})
	}

	// open-dispute without a running node, party without a dispute.
	_, _, err := runCommand("devtool", "open-dispute", "--mostro-control", freePort(t), "--reasoning-sim", "", "--state", d.state)
	require.ErrorContains(t, err, "is serbero devtool mostro running?")
	_, _, err = runCommand("devtool", "party", "--role", "buyer", "--say", "x", "--state", d.state, "--relay", r.URL())
	require.ErrorContains(t, err, "no disputes in")
	_, _, err = runCommand("devtool", "party", "--role", "buyer", "--say", "x", "--read", "--state", d.state)
	require.ErrorContains(t, err, "exactly one of")
}

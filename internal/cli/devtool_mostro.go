package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
)

// Defaults of the dev Mostro node and of the reasoning simulator's control
// endpoint.
const (
	defaultMostroControl = "127.0.0.1:8090"
	defaultDevConfig     = ".data/dev-config.toml"
	defaultReasoningSim  = "127.0.0.1:8089"
)

// devConfigPath is the config make dev uses: --config, SERBERO_CONFIG,
// ./config.toml if present, else .data/dev-config.toml (scripts/dev.sh's
// order).
func devConfigPath(flagPath string, getenv func(string) string) string {
	if p := config.ResolvePath(flagPath, getenv); p != config.DefaultPath {
		return p
	}
	if _, err := os.Stat(config.DefaultPath); err == nil {
		return config.DefaultPath
	}
	return defaultDevConfig
}

// devNodeKeys loads the dev config (as relaygw, which holds Serbero's key)
// and the dev Mostro key, and checks that the key is the config's
// [mostro].pubkey. It returns the node key, Serbero's pubkey and the
// configured solvers.
func devNodeKeys(cfgPath, keyFile string, getenv func(string) string) (keys.Keys, string, []config.SolverConfig, error) {
	loaded, err := config.Load(config.LoadOptions{Path: cfgPath, Target: config.TargetRelaygw, Getenv: getenv})
	if err != nil {
		return keys.Keys{}, "", nil, err
	}
	serbero, err := keys.Parse(loaded.PrivateKey.Reveal())
	if err != nil {
		return keys.Keys{}, "", nil, fmt.Errorf("%s: [serbero].private_key is not a valid secret key", cfgPath)
	}
	node, err := readKeyFile(keyFile)
	if err != nil {
		return keys.Keys{}, "", nil, err
	}
	if node.PublicKey() != loaded.Config.Mostro.Pubkey {
		return keys.Keys{}, "", nil, fmt.Errorf("the key in %s is Mostro %s, but %s names [mostro].pubkey %s: Serbero would ignore this node "+
			"(use the dev config devtool init-config wrote, or pass the matching --mostro-key)",
			keyFile, node.PublicKey(), cfgPath, loaded.Config.Mostro.Pubkey)
	}
	return node, serbero.PublicKey(), loaded.Config.Solvers, nil
}

// waitForRelay dials url until it answers, ctx ends or wait passes (make
// dev starts the dev Mostro before serve --dev brings the relay up).
func waitForRelay(ctx context.Context, url string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := relayconn.Dial(cctx, url, relayconn.Options{})
		cancel()
		if err == nil {
			r.Close()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("relay %s did not answer within %s: %w (is serbero serve --dev running?)", url, wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond): // retry pacing
		}
	}
}

// mostroCommand runs the dev Mostro node until interrupted: the fake node
// of pkg/testkit/fakemostro (mostrod's intake rules and replies) with the
// dev config's Mostro key, Serbero registered as a solver, and a loopback
// control endpoint where devtool open-dispute opens disputes.
func mostroCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("mostro", flag.ContinueOnError)
	relayURL := fs.String("relay", defaultDevRelay, "relay URL")
	cfgFlag := fs.String("config", "", "Serbero's config (default: SERBERO_CONFIG, ./config.toml, else "+defaultDevConfig+")")
	keyFile := fs.String("mostro-key", defaultMostroKey, "file holding the dev Mostro secret key (its pubkey must be the config's [mostro].pubkey)")
	control := fs.String("control", defaultMostroControl, "loopback address of the control endpoint devtool open-dispute uses")
	version := fs.Int("protocol-version", mostro.ProtocolV2, "protocol version the node speaks (1 or 2)")
	pow := fs.Int("pow", 0, "proof of work every request must carry")
	powFirst := fs.Int("pow-first-contact", 0, "proof of work of a first contact (v2; at least --pow)")
	perm := fs.String("serbero-permission", "read", "Serbero's solver category on the node: read or read-write")
	wait := fs.Duration("wait", time.Minute, "how long to wait for the relay to come up")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	if *version != mostro.ProtocolV1 && *version != mostro.ProtocolV2 {
		return &usageError{msg: "--protocol-version must be 1 or 2"}
	}
	serberoPerm := fakemostro.PermRead
	switch *perm {
	case "read":
	case "read-write", "write":
		serberoPerm = fakemostro.PermReadWrite
	default:
		return &usageError{msg: "--serbero-permission must be read or read-write"}
	}
	cfgPath := devConfigPath(*cfgFlag, io.Getenv)
	node, serbero, solvers, err := devNodeKeys(cfgPath, *keyFile, io.Getenv)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *control)
	if err != nil {
		return fmt.Errorf("control endpoint: listen %s: %w", *control, err)
	}
	defer lis.Close()
	if err := waitForRelay(ctx, *relayURL, *wait); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Stderr, nil))
	m, err := fakemostro.Run(fakemostro.Config{Keys: node, ProtocolVersion: *version, PoW: *pow, PoWFirstContact: *powFirst,
		MostroVersion: "dev", Name: "serbero-dev"}, log, *relayURL)
	if err != nil {
		return fmt.Errorf("dev Mostro: %w", err)
	}
	defer m.Close()
	m.AddSolver(serbero, serberoPerm)
	for _, s := range solvers {
		// The human solvers of the config may take disputes too (a
		// write solver takes over from Serbero).
		pk, err := config.NormalizePubkey(s.Pubkey)
		if err != nil || pk == serbero {
			continue
		}
		p := fakemostro.PermRead
		if s.CanWrite() {
			p = fakemostro.PermReadWrite
		}
		m.AddSolver(pk, p)
	}
	srv := &http.Server{Handler: mostroControl(m), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	fmt.Fprintf(io.Stdout, "dev Mostro %s on %s (protocol v%d, pow %d); solver %s (Serbero, %s)\n",
		m.Pubkey(), *relayURL, *version, *pow, serbero, serberoPerm)
	fmt.Fprintf(io.Stdout, "control http://%s (serbero devtool open-dispute)\n", lis.Addr())
	go reportNode(ctx, m, io.Stdout)
	select {
	case err := <-errc:
		return fmt.Errorf("control endpoint: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("control endpoint shutdown: %w", err)
	}
	return nil
}

// reportNode prints what the node accepted, sent and dropped as it
// happens (actions and ids, never content), until ctx ends.
func reportNode(ctx context.Context, m *fakemostro.Mostro, out io.Writer) {
	var reqs, sent int
	drops := map[string]int{}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, r := range m.Requests()[reqs:] {
			fmt.Fprintf(out, "request %s %s from %s\n", r.Action, r.ID, shortKey(r.Identity))
			reqs++
		}
		for _, s := range m.SentMessages()[sent:] {
			fmt.Fprintf(out, "sent %s %s to %s\n", s.Message.Kind.Action, s.Message.Kind.ID, shortKey(s.To))
			sent++
		}
		for reason, n := range m.Drops() {
			if n > drops[reason] {
				fmt.Fprintf(out, "dropped %d request(s): %s\n", n-drops[reason], reason)
				drops[reason] = n
			}
		}
	}
}

func shortKey(pk string) string {
	if len(pk) > 12 {
		return pk[:12] + "…"
	}
	return pk
}

// openDisputeRequest is the control endpoint's POST /disputes body.
type openDisputeRequest struct {
	DisputeID    string `json:"dispute_id,omitempty"`
	OrderID      string `json:"order_id,omitempty"`
	BuyerPubkey  string `json:"buyer_pubkey"`
	SellerPubkey string `json:"seller_pubkey"`
	Initiator    string `json:"initiator,omitempty"`
}

// disputeView is the control endpoint's view of a dispute.
type disputeView struct {
	DisputeID    string `json:"dispute_id"`
	OrderID      string `json:"order_id"`
	Status       string `json:"status"`
	Solver       string `json:"solver,omitempty"`
	MostroPubkey string `json:"mostro_pubkey"`
}

// mostroControl is the dev node's control API: POST /disputes opens a
// dispute (publishing its initiated revision), GET /disputes/{id} shows it.
func mostroControl(m *fakemostro.Mostro) http.Handler {
	view := func(d fakemostro.Dispute) disputeView {
		return disputeView{DisputeID: d.ID, OrderID: d.OrderID, Status: string(d.Status), Solver: d.Solver, MostroPubkey: m.Pubkey()}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /disputes", func(w http.ResponseWriter, r *http.Request) {
		var req openDisputeRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := req.check(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.DisputeID != "" && m.Dispute(req.DisputeID).ID != "" {
			http.Error(w, "dispute "+req.DisputeID+" exists", http.StatusConflict)
			return
		}
		d := m.OpenDispute(fakemostro.DisputeSpec{DisputeID: req.DisputeID, OrderID: req.OrderID,
			BuyerPubkey: req.BuyerPubkey, SellerPubkey: req.SellerPubkey, Initiator: req.Initiator})
		writeControlJSON(w, view(d))
	})
	mux.HandleFunc("GET /disputes/{id}", func(w http.ResponseWriter, r *http.Request) {
		d := m.Dispute(r.PathValue("id"))
		if d.ID == "" {
			http.Error(w, "unknown dispute", http.StatusNotFound)
			return
		}
		writeControlJSON(w, view(d))
	})
	return mux
}

// check validates an open request (ids are UUIDs, keys are x-only hex,
// buyer and seller differ).
func (r *openDisputeRequest) check() error {
	for name, id := range map[string]*string{"dispute_id": &r.DisputeID, "order_id": &r.OrderID} {
		if *id == "" {
			continue
		}
		u, err := uuid.Parse(*id)
		if err != nil {
			return fmt.Errorf("%s is not a UUID", name)
		}
		*id = u.String()
	}
	if !keys.ValidPubkey(r.BuyerPubkey) || !keys.ValidPubkey(r.SellerPubkey) {
		return errors.New("buyer_pubkey and seller_pubkey must be x-only hex public keys")
	}
	if r.BuyerPubkey == r.SellerPubkey {
		return errors.New("buyer and seller must have different trade keys")
	}
	switch r.Initiator {
	case "", "buyer", "seller":
	default:
		return errors.New("initiator must be buyer or seller")
	}
	return nil
}

func writeControlJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// postJSON sends a JSON request to a dev control endpoint and decodes the
// answer into out (when not nil).
func postJSON(ctx context.Context, method, url string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// The outcomes devtool open-dispute can script on the reasoning simulator.
const (
	outcomeSummary        = "summary"
	outcomeEscalate       = "escalate"
	outcomeEscalateAtOpen = "escalate-at-open"
)

// outcomeScripts are the simulator rules of each outcome (the dispute's
// classify sequence; see docs/mediation.md#trying-a-mediation).
var outcomeScripts = map[string]string{
	// Ask both parties, ask again after the first answer, summarize after
	// the second: buyer says, seller says, the solver gets the summary.
	outcomeSummary: `{"classify":[{"kind":"ask_clarification","times":2},{"kind":"summarize"}],"summarize":[{"kind":"summary"}]}`,
	// Ask both parties, then flag fraud on the first answer: the session
	// escalates (fraud_indicator) and escalationsvc sends the handoff.
	outcomeEscalate: `{"classify":[{"kind":"ask_clarification"},{"kind":"fraud"}]}`,
	// Flag fraud at once: escalated before the take, no chat.
	outcomeEscalateAtOpen: `{"classify":[{"kind":"fraud"}]}`,
}

func openDisputeCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("open-dispute", flag.ContinueOnError)
	control := fs.String("mostro-control", defaultMostroControl, "the dev Mostro's control endpoint (devtool mostro --control)")
	sim := fs.String("reasoning-sim", defaultReasoningSim, "the reasoning simulator to script the outcome on (empty: leave it alone)")
	state := fs.String("state", defaultPartiesFile, "state file keeping the parties' trade keys (0600)")
	id := fs.String("dispute-id", "", "dispute id (default: a fresh UUID)")
	initiator := fs.String("initiator", "buyer", "who opened the dispute: buyer or seller")
	outcome := fs.String("outcome", outcomeSummary, "what the simulator makes of it: summary, escalate (fraud flag after the first answer) or escalate-at-open")
	buyerFile := fs.String("buyer-key", "", "file holding the buyer's trade secret key (default: a fresh key)")
	sellerFile := fs.String("seller-key", "", "file holding the seller's trade secret key (default: a fresh key)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	script, ok := outcomeScripts[*outcome]
	if !ok {
		return &usageError{msg: "--outcome must be summary, escalate or escalate-at-open"}
	}
	partyKey := func(file string) (keys.Keys, error) {
		if file == "" {
			return keys.Generate(), nil
		}
		return readKeyFile(file)
	}
	buyer, err := partyKey(*buyerFile)
	if err != nil {
		return err
	}
	seller, err := partyKey(*sellerFile)
	if err != nil {
		return err
	}
	st, err := loadParties(*state)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = uuid.NewString()
	}
	if *sim != "" {
		err := postJSON(ctx, http.MethodPut, "http://"+*sim+"/dev/disputes/"+*id, json.RawMessage(script), nil)
		switch {
		case err != nil && *outcome != outcomeSummary:
			return fmt.Errorf("script outcome %s on the reasoning simulator: %w (make dev starts it unless the config has [reasoning])", *outcome, err)
		case err != nil:
			fmt.Fprintf(io.Stderr, "note: reasoning simulator at %s not reachable (%v); the configured provider decides\n", *sim, err)
		}
	}
	var d disputeView
	req := openDisputeRequest{DisputeID: *id, BuyerPubkey: buyer.PublicKey(), SellerPubkey: seller.PublicKey(), Initiator: *initiator}
	if err := postJSON(ctx, http.MethodPost, "http://"+*control+"/disputes", req, &d); err != nil {
		return fmt.Errorf("open dispute on the dev Mostro: %w (is serbero devtool mostro running? make dev starts it)", err)
	}
	if st.MostroPubkey != d.MostroPubkey {
		// Another node: the disputes of the old one are gone with it.
		st = devParties{MostroPubkey: d.MostroPubkey, Disputes: map[string]devDispute{}}
	}
	st.Disputes[d.DisputeID] = devDispute{
		OrderID: d.OrderID, Initiator: *initiator, Outcome: *outcome, OpenedAt: time.Now().UTC(),
		Buyer:  devParty{Pubkey: buyer.PublicKey(), SecretKey: buyer.RevealSecretHex()},
		Seller: devParty{Pubkey: seller.PublicKey(), SecretKey: seller.RevealSecretHex()},
	}
	if err := saveParties(*state, st); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "opened dispute %s (order %s, initiator %s, outcome %s) on dev Mostro %s\n",
		d.DisputeID, d.OrderID, *initiator, *outcome, shortKey(d.MostroPubkey))
	fmt.Fprintf(io.Stdout, "buyer %s, seller %s (trade keys in %s)\n", shortKey(buyer.PublicKey()), shortKey(seller.PublicKey()), *state)
	fmt.Fprintf(io.Stdout, "next: serbero devtool party --role buyer --dispute %s --listen\n", d.DisputeID)
	return nil
}

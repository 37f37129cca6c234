package cli

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/relayconn"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// devtoolUsage lists the development helpers.
const devtoolUsage = `usage: serbero devtool <command> [flags]

commands:
  init-config      write a development config with fresh keys (make dev does this)
  publish-info     publish the dev Mostro node's info event (kind 38385) to the dev relay
  publish-dispute  publish a dispute event (kind 38386) signed by the dev Mostro key
  read-dms         print the NIP-17 DMs the dev solver received (--follow to keep listening)
  reasoning-sim    serve a scripted OpenAI-compatible reasoning simulator (--listen, --script)
  mostro           run the dev Mostro node: info event, disputes, answers admin-take-dispute (make dev starts it)
  open-dispute     open a dispute on the dev Mostro with fresh buyer and seller trade keys (--outcome)
  party            play the buyer or seller of a dev dispute: --say TEXT, --read, --listen
  relay            run the in-memory dev relay as its own process (--listen)

They are not needed to run Serbero in production.`

// devtoolCommand holds development helpers. They are not needed to run
// Serbero in production.
func devtoolCommand(ctx context.Context, args []string, io IO) error {
	if len(args) == 0 {
		fmt.Fprintln(io.Stderr, devtoolUsage)
		return &usageError{msg: "no devtool command given"}
	}
	switch args[0] {
	case "init-config":
		return initConfigCommand(args[1:], io)
	case "publish-info":
		return publishInfoCommand(ctx, args[1:], io)
	case "publish-dispute":
		return publishDisputeCommand(ctx, args[1:], io)
	case "read-dms":
		return readDMsCommand(ctx, args[1:], io)
	case "reasoning-sim":
		return reasoningSimCommand(ctx, args[1:], io)
	case "mostro":
		return mostroCommand(ctx, args[1:], io)
	case "open-dispute":
		return openDisputeCommand(ctx, args[1:], io)
	case "party":
		return partyCommand(ctx, args[1:], io)
	case "relay":
		return devRelayCommand(ctx, args[1:], io)
	case "help", "-h", "--help":
		fmt.Fprintln(io.Stdout, devtoolUsage)
		return nil
	}
	fmt.Fprintln(io.Stderr, devtoolUsage)
	return &usageError{msg: fmt.Sprintf("unknown devtool command %q", args[0])}
}

func initConfigCommand(args []string, io IO) error {
	fs := flag.NewFlagSet("init-config", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the development config (required)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	if *out == "" {
		return &usageError{msg: "--out is required"}
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s already exists; not overwriting", *out)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(*out)
	serbero, _, err := newKey()
	if err != nil {
		return err
	}
	mostroSK, mostroPK, err := newKey()
	if err != nil {
		return err
	}
	solverSK, solverPK, err := newKey()
	if err != nil {
		return err
	}
	// The Mostro and solver secrets are for local play only (a fake Mostro
	// publishing disputes, a solver reading DMs); Serbero never reads them.
	for name, sk := range map[string]string{"dev-mostro.key": mostroSK, "dev-solver.key": solverSK} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sk+"\n"), 0o600); err != nil {
			return err
		}
	}
	content := fmt.Sprintf(devConfig, serbero, mostroPK, solverPK)
	if err := os.WriteFile(*out, []byte(content), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "wrote %s\n", *out)
	return nil
}

const devConfig = `# Development config written by "serbero devtool init-config".
# Database: SERBERO_DATABASE_URL (scripts/dev.sh sets it).
[serbero]
private_key = "%s"
log_level = "info"

[mostro]
# A local stand-in node; its secret key is in dev-mostro.key beside this file.
pubkey = "%s"

# No [[relays]]: "serve --dev" starts an embedded relay (see [relaygw]).

[[solvers]]
# A local solver; its secret key is in dev-solver.key beside this file.
pubkey = "%s"
permission = "write"

[timeouts]
renotification_seconds = 300
renotification_check_interval_seconds = 60

[escalation]
enabled = true
dispatch_interval_seconds = 30

[server]
log_format = "text"
drain_seconds = 1
`

// newKey returns a fresh secp256k1 secret key and its x-only public key, hex.
func newKey() (sk, pk string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	priv, _ := btcec.PrivKeyFromBytes(b)
	return hex.EncodeToString(priv.Serialize()), hex.EncodeToString(schnorr.SerializePubKey(priv.PubKey())), nil
}

// Defaults of the dev helpers: the relay `serve --dev` embeds and the key
// files `devtool init-config` writes (paths relative to the repository
// root, where make dev runs).
const (
	defaultDevRelay  = "ws://127.0.0.1:7447"
	defaultMostroKey = ".data/dev-mostro.key"
	defaultSolverKey = ".data/dev-solver.key"
)

// readKeyFile reads a hex or nsec secret key from a file.
func readKeyFile(path string) (keys.Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return keys.Keys{}, fmt.Errorf("read key file: %w (run make dev once, or pass the key file)", err)
	}
	k, err := keys.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return keys.Keys{}, fmt.Errorf("key file %s does not hold a valid secret key", path)
	}
	return k, nil
}

// publish connects to relayURL and publishes ev.
func publish(ctx context.Context, relayURL string, ev nostr.Event) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := relayconn.Dial(cctx, relayURL, relayconn.Options{})
	if err != nil {
		return fmt.Errorf("connect to %s: %w (is serbero serve --dev running?)", relayURL, err)
	}
	defer r.Close()
	if err := r.Publish(cctx, ev); err != nil {
		return fmt.Errorf("publish to %s: %w", relayURL, err)
	}
	return nil
}

func publishInfoCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("publish-info", flag.ContinueOnError)
	relayURL := fs.String("relay", defaultDevRelay, "relay URL")
	keyFile := fs.String("mostro-key", defaultMostroKey, "file holding the dev Mostro secret key")
	version := fs.Int("protocol-version", 2, "protocol_version tag (1 or 2)")
	pow := fs.Int("pow", 0, "pow tag")
	powFirst := fs.Int("pow-first-contact", 0, "pow_first_contact tag")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	k, err := readKeyFile(*keyFile)
	if err != nil {
		return err
	}
	ev := nostr.Event{Kind: mostro.KindInfo, CreatedAt: nostr.Now(), Tags: nostr.Tags{
		{"d", k.PublicKey()}, {"mostro_version", "dev"}, {"pow", strconv.Itoa(*pow)},
		{"pow_first_contact", strconv.Itoa(max(*pow, *powFirst))}, {"protocol_version", strconv.Itoa(*version)}, {"z", "info"},
	}}
	if err := k.Sign(&ev); err != nil {
		return err
	}
	if err := publish(ctx, *relayURL, ev); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "published info event %s (protocol_version %d) as mostro %s\n", ev.ID, *version, k.PublicKey())
	return nil
}

func publishDisputeCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("publish-dispute", flag.ContinueOnError)
	relayURL := fs.String("relay", defaultDevRelay, "relay URL")
	keyFile := fs.String("mostro-key", defaultMostroKey, "file holding the dev Mostro secret key")
	id := fs.String("dispute-id", "", "dispute id (default: a fresh UUID)")
	status := fs.String("status", "initiated", "dispute status (s tag): initiated, in-progress, settled, seller-refunded, ...")
	initiator := fs.String("initiator", "buyer", "initiator tag: buyer, seller or unknown (empty: omitted)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	k, err := readKeyFile(*keyFile)
	if err != nil {
		return err
	}
	if *id == "" {
		*id = uuid.NewString()
	}
	now := time.Now()
	// mostrod's tag order: d, expiration, s, initiator, created_at, y, z.
	tags := nostr.Tags{{"d", *id}, {"expiration", strconv.FormatInt(now.Add(30*24*time.Hour).Unix(), 10)}, {"s", *status}}
	if *initiator != "" {
		tags = append(tags, nostr.Tag{"initiator", *initiator})
	}
	tags = append(tags, nostr.Tag{"created_at", strconv.FormatInt(now.Unix(), 10)}, nostr.Tag{"y", "mostro", "dev"}, nostr.Tag{"z", "dispute"})
	ev := nostr.Event{Kind: mostro.KindDispute, CreatedAt: nostr.Timestamp(now.Unix()), Tags: tags}
	if err := k.Sign(&ev); err != nil {
		return err
	}
	if err := publish(ctx, *relayURL, ev); err != nil {
		return err
	}
	fmt.Fprintf(io.Stdout, "published dispute %s (status %s) as event %s\n", *id, *status, ev.ID)
	return nil
}

func readDMsCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("read-dms", flag.ContinueOnError)
	relayURL := fs.String("relay", defaultDevRelay, "relay URL")
	keyFile := fs.String("solver-key", defaultSolverKey, "file holding the dev solver secret key")
	follow := fs.Bool("follow", false, "keep listening for new DMs (Ctrl-C to stop)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	k, err := readKeyFile(*keyFile)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := relayconn.Dial(cctx, *relayURL, relayconn.Options{})
	cancel()
	if err != nil {
		return fmt.Errorf("connect to %s: %w (is serbero serve --dev running?)", *relayURL, err)
	}
	defer r.Close()
	// Gift wraps are back-dated up to two days.
	since := nostr.Timestamp(time.Now().Add(-7 * 24 * time.Hour).Unix())
	sub, err := r.Subscribe(ctx, nostr.Filters{{Kinds: []int{mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": {k.PublicKey()}}, Since: &since}}, "read-dms")
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	fmt.Fprintf(io.Stderr, "DMs to solver %s on %s:\n", k.PublicKey(), *relayURL)
	var msgs []dm.Message
	show := func(m dm.Message) {
		fmt.Fprintf(io.Stdout, "--- %s from %s (wrap %s)\n%s\n", time.Unix(int64(m.Rumor.CreatedAt), 0).UTC().Format(time.RFC3339), m.From, m.WrapID, m.Body)
	}
	stored := true
	err = sub.Each(ctx, func(it relayconn.Item) {
		if it.EOSE {
			stored = false
			slices.SortFunc(msgs, func(x, y dm.Message) int { return cmp.Compare(x.Rumor.CreatedAt, y.Rumor.CreatedAt) })
			for _, m := range msgs {
				show(m)
			}
			if len(msgs) == 0 {
				fmt.Fprintln(io.Stderr, "(no DMs yet)")
			}
			if !*follow {
				sub.Close() // ends Each
			}
			return
		}
		m, err := dm.Unwrap(*it.Event, k)
		if err != nil {
			fmt.Fprintf(io.Stderr, "skipped gift wrap %s: %v\n", it.Event.ID, err)
			return
		}
		if stored {
			msgs = append(msgs, m) // stored: printed in time order at EOSE
			return
		}
		show(m)
	})
	if errors.Is(err, relayconn.ErrUnsubscribed) || errors.Is(err, context.Canceled) {
		return nil // done (no --follow), or Ctrl-C
	}
	return err
}

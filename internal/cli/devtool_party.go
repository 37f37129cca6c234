package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
	"github.com/serbero/serbero/pkg/mostro/transport"
)

// partyLookback is how far back the party reads (v1 wraps are backdated
// up to two days).
const partyLookback = 7 * 24 * time.Hour

// partyCommand plays the buyer or the seller of a dispute opened with
// devtool open-dispute: it learns the solver from Mostro's
// admin-took-dispute notice, then sends one chat line (--say) or prints
// the conversation (--read, or --listen to keep following it).
func partyCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("party", flag.ContinueOnError)
	role := fs.String("role", "", "buyer or seller (required)")
	disputeID := fs.String("dispute", "", "dispute id (default: the newest dispute in the state file)")
	say := fs.String("say", "", "send this chat line to the solver")
	read := fs.Bool("read", false, "print the conversation so far and exit")
	listen := fs.Bool("listen", false, "print the conversation and keep following it (Ctrl-C to stop)")
	state := fs.String("state", defaultPartiesFile, "state file written by devtool open-dispute")
	relayURL := fs.String("relay", defaultDevRelay, "relay URL")
	solverFlag := fs.String("solver", "", "the solver's pubkey (default: learned from Mostro's admin-took-dispute notice)")
	wait := fs.Duration("wait", time.Minute, "how long to wait for the dispute to be taken")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	modes := 0
	for _, on := range []bool{*say != "", *read, *listen} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return &usageError{msg: "give exactly one of --say TEXT, --read, --listen"}
	}
	st, err := loadParties(*state)
	if err != nil {
		return err
	}
	id, d, err := st.dispute(*disputeID, *state)
	if err != nil {
		return err
	}
	p, err := d.party(*role)
	if err != nil {
		return err
	}
	k, err := p.keys()
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
	solver := *solverFlag
	if solver == "" {
		if solver, err = learnSolver(ctx, r, k, st.MostroPubkey, d.OrderID, *wait, func() {
			fmt.Fprintf(io.Stderr, "waiting up to %s for dispute %s to be taken (Serbero takes it once it has classified it)...\n", *wait, id)
		}); err != nil {
			return err
		}
	}
	ch, err := chat.Derive(k, solver)
	if err != nil {
		return err
	}
	if *say != "" {
		outer, inner, err := chat.BuildV2(ch, k, *say, time.Now())
		if err != nil {
			return fmt.Errorf("build chat line: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := r.Publish(pctx, outer); err != nil {
			return fmt.Errorf("publish chat line: %w", err)
		}
		fmt.Fprintf(io.Stdout, "%s → solver %s: sent line %s (dispute %s)\n", *role, shortKey(solver), inner.ID, id)
		return nil
	}
	return printConversation(ctx, r, ch, *role, solver, *listen, io)
}

// learnSolver finds the newest admin-took-dispute notice (payload Peer:
// the solver) that the node sent the party about the order, waiting up to
// wait for one. announce is called once when it starts waiting.
func learnSolver(ctx context.Context, r *relayconn.Conn, k keys.Keys, node, orderID string, wait time.Duration, announce func()) (string, error) {
	since := nostr.Timestamp(time.Now().Add(-partyLookback).Unix())
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := r.Subscribe(wctx, nostr.Filters{{
		Kinds: []int{mostro.KindGiftWrap, mostro.KindDirect}, Tags: nostr.TagMap{"p": {k.PublicKey()}}, Since: &since,
	}}, "party-inbox")
	if err != nil {
		return "", fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	var solver string
	var at nostr.Timestamp
	live := false
	var timer *time.Timer
	err = sub.Each(wctx, func(it relayconn.Item) {
		if it.EOSE {
			live = true
			if solver != "" {
				sub.Close() // taken before we looked: the newest stored notice
				return
			}
			announce()
			timer = time.AfterFunc(wait, cancel)
			return
		}
		rcv, err := transport.Open(*it.Event, k, transport.OpenOptions{AcceptRumorKind14: true})
		if err != nil {
			return // not a message to this key
		}
		kind := rcv.Message.Kind
		if rcv.Sender != node || kind.Action != mostro.ActionAdminTookDispute || kind.ID != orderID ||
			kind.Payload == nil || kind.Payload.Peer == nil || !keys.ValidPubkey(kind.Payload.Peer.Pubkey) {
			return
		}
		if solver == "" || rcv.CreatedAt >= at {
			solver, at = kind.Payload.Peer.Pubkey, rcv.CreatedAt
		}
		if live {
			sub.Close() // taken while we waited
		}
	})
	if timer != nil {
		timer.Stop()
	}
	switch {
	case solver != "":
		return solver, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, context.Canceled):
		return "", fmt.Errorf("dispute not taken within %s: no admin-took-dispute notice from Mostro %s for order %s yet", wait, shortKey(node), orderID)
	}
	return "", fmt.Errorf("read the party's messages: %w", err)
}

// printConversation prints the chat lines of the channel, both the
// solver's and the party's own, validated as the relay gateway does (the
// inner signer must be one of the two). With follow it keeps printing new
// lines until ctx ends.
func printConversation(ctx context.Context, r *relayconn.Conn, ch chat.Channel, role, solver string, follow bool, io IO) error {
	since := nostr.Timestamp(time.Now().Add(-partyLookback).Unix())
	sub, err := r.Subscribe(ctx, nostr.Filters{
		{Kinds: []int{mostro.KindDirect}, Authors: []string{ch.SignPubkey()}, Since: &since},
		{Kinds: []int{mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": {ch.SharedPubkey()}}, Since: &since},
	}, "party-chat")
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer sub.Close()
	// Validated as a third party (no own key), so the party's own lines
	// are shown too; the signer must still be the solver or the party.
	view := ch
	view.Own = ""
	var v chat.Validator
	seen := map[string]bool{}
	var stored []chat.Line
	show := func(l chat.Line) {
		who := "Serbero"
		if l.Author() == ch.Own {
			who = role + " (you)"
		}
		fmt.Fprintf(io.Stdout, "--- %s %s:\n%s\n", time.Unix(int64(l.Inner.CreatedAt), 0).UTC().Format(time.RFC3339), who, l.Text())
	}
	fmt.Fprintf(io.Stderr, "chat of the %s with solver %s on %s:\n", role, shortKey(solver), r.URL())
	live := false
	err = sub.Each(ctx, func(it relayconn.Item) {
		if it.EOSE {
			live = true
			// Relays send stored events newest first; lines of the same
			// second keep that order reversed.
			slices.Reverse(stored)
			slices.SortStableFunc(stored, func(a, b chat.Line) int { return cmp.Compare(a.Inner.CreatedAt, b.Inner.CreatedAt) })
			for _, l := range stored {
				show(l)
			}
			if len(stored) == 0 {
				fmt.Fprintln(io.Stderr, "(no lines yet)")
			}
			if !follow {
				sub.Close()
			}
			return
		}
		l, err := v.Validate(*it.Event, view, solver, ch.Own)
		if err != nil {
			fmt.Fprintf(io.Stderr, "skipped event %s: %s\n", it.Event.ID, chat.ReasonOf(err))
			return
		}
		if seen[l.Inner.ID] {
			return // the same line in the other form
		}
		seen[l.Inner.ID] = true
		if !live {
			stored = append(stored, l)
			return
		}
		show(l)
	})
	if errors.Is(err, relayconn.ErrUnsubscribed) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

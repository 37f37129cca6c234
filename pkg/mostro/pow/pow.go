// Package pow is NIP-13 proof of work: mining a nonce tag into an event,
// counting the leading zero bits of an id, and checking a difficulty.
//
// Mining keeps the event's created_at and every other field; it appends one
// tag ["nonce", "<n>", "<difficulty>"] (replacing any earlier nonce tag) and
// searches n until the event id has at least the target number of leading
// zero bits. The caller signs the event afterwards (the id depends on the
// pubkey, so PubKey must already be set). Mostro's check (nostr-sdk
// check_pow) counts the id's leading zero bits and ignores the committed
// target; Check does the same, CommittedDifficulty reads the commitment too.
package pow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"strconv"
	"sync"

	"github.com/nbd-wtf/go-nostr"
)

// ErrInsufficient is returned by Check when an id has too little work.
var ErrInsufficient = errors.New("insufficient proof of work")

// ErrMissingPubkey is returned by Mine for an event without a pubkey: the id
// covers the pubkey, so work done without it is worthless.
var ErrMissingPubkey = errors.New("proof of work needs the event pubkey set")

// MaxDifficulty is the highest difficulty Mine accepts.
const MaxDifficulty = 64

// LeadingZeroBits counts the leading zero bits of a hex event id. A
// malformed id counts as 0.
func LeadingZeroBits(idHex string) int {
	if len(idHex) != 64 {
		return 0
	}
	var b [32]byte
	if _, err := hex.Decode(b[:], []byte(idHex)); err != nil {
		return 0
	}
	return leadingZeros(b)
}

func leadingZeros(h [32]byte) int {
	n := 0
	for _, x := range h {
		if x == 0 {
			n += 8
			continue
		}
		return n + bits.LeadingZeros8(x)
	}
	return n
}

// Check returns ErrInsufficient unless the id has at least difficulty
// leading zero bits. It does not look at the nonce tag (mostrod does not
// either). Difficulty 0 always passes.
func Check(idHex string, difficulty int) error {
	if difficulty <= 0 {
		return nil
	}
	if got := LeadingZeroBits(idHex); got < difficulty {
		return fmt.Errorf("%w: %d bits, want %d", ErrInsufficient, got, difficulty)
	}
	return nil
}

// CommittedDifficulty is the work an event proves under NIP-13's commitment
// rule: its id's leading zero bits, capped by the target in its nonce tag,
// or 0 when there is no nonce tag or the target is not met.
func CommittedDifficulty(evt *nostr.Event) int {
	tag := evt.Tags.Find("nonce")
	if len(tag) < 3 {
		return 0
	}
	target, err := strconv.Atoi(tag[2])
	if err != nil {
		return 0
	}
	work := LeadingZeroBits(evt.ID)
	if target > work {
		return 0
	}
	return target
}

// Options tunes Mine.
type Options struct {
	// Workers is the number of goroutines searching; 0 means GOMAXPROCS.
	Workers int
}

// Mine appends a nonce tag to evt (removing earlier ones) such that its id
// has at least difficulty leading zero bits, and sets evt.ID. It does not
// sign. difficulty <= 0 leaves evt unchanged. It stops with ctx's error when
// ctx ends first.
func Mine(ctx context.Context, evt *nostr.Event, difficulty int, opts Options) error {
	if difficulty <= 0 {
		return nil
	}
	if difficulty > MaxDifficulty {
		return fmt.Errorf("difficulty %d above %d", difficulty, MaxDifficulty)
	}
	if evt.PubKey == "" {
		return ErrMissingPubkey
	}
	target := strconv.Itoa(difficulty)
	tags := make(nostr.Tags, 0, len(evt.Tags)+1)
	for _, t := range evt.Tags {
		if len(t) > 0 && t[0] == "nonce" {
			continue
		}
		tags = append(tags, t)
	}
	tags = append(tags, nostr.Tag{"nonce", "", target})
	evt.Tags = tags

	// Serialize once with an empty nonce, then split around it: every
	// attempt hashes prefix + decimal(n) + suffix without re-serializing.
	ser := evt.Serialize()
	esc := (&nostr.Event{Content: evt.Content}).Serialize()
	escContent := esc[len(`[0,"",0,0,[],`) : len(esc)-1]
	tail := `","` + target + `"]],` + string(escContent) + `]`
	if len(ser) < len(tail) || string(ser[len(ser)-len(tail):]) != tail {
		return errors.New("mine: unexpected serialization")
	}
	prefix := ser[:len(ser)-len(tail)]
	suffix := []byte(tail)

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := make(chan uint64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func(start uint64) {
			defer wg.Done()
			buf := make([]byte, 0, len(prefix)+20+len(suffix))
			step := uint64(workers)
			for n, i := start, 0; ; n, i = n+step, i+1 {
				if i&1023 == 0 && ctx.Err() != nil {
					return
				}
				buf = append(buf[:0], prefix...)
				buf = strconv.AppendUint(buf, n, 10)
				buf = append(buf, suffix...)
				if leadingZeros(sha256.Sum256(buf)) >= difficulty {
					found <- n
					cancel()
					return
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	select {
	case n := <-found:
		evt.Tags[len(evt.Tags)-1][1] = strconv.FormatUint(n, 10)
		evt.ID = evt.GetID()
		return nil
	default:
		return fmt.Errorf("mine: %w", context.Cause(ctx))
	}
}

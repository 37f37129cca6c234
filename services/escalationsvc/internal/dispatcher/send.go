package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/pkg/relaygwclient"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// errTransient marks a send that did not reach relaygw's verdict.
var errTransient = errors.New("relaygw unavailable")

// sendAll sends body to each recipient in order. A recipient whose pubkey
// is not a valid key, or that relaygw refuses for good, or whose DM no
// relay accepted, is a failed recipient. Any other relaygw error aborts the
// whole handoff as transient (nothing is recorded; the retry repeats every
// send under the same idempotency keys, so no recipient gets a second DM).
func (d *Dispatcher) sendAll(ctx context.Context, log *slog.Logger, h *handoff.Handoff, recipients []string, body string) ([]store.Recipient, error) {
	out := make([]store.Recipient, 0, len(recipients))
	for _, pk := range recipients {
		norm, err := nostrkey.Normalize(pk)
		if err != nil {
			out = append(out, store.Recipient{Pubkey: pk, Error: "invalid pubkey: " + strings.TrimPrefix(err.Error(), nostrkey.ErrInvalid.Error()+": ")})
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
		resp, err := d.opts.Sender.SendDirectMessage(sctx, &relaygwv1.SendDirectMessageRequest{
			RecipientPubkey: pk, Body: body, IdempotencyKey: IdempotencyKey(h.HandoffEventID, norm),
		})
		cancel()
		switch {
		case err != nil:
			text, permanent := sendFailure(err)
			if !permanent {
				return nil, fmt.Errorf("%w: send to %s: %w", errTransient, short(norm), err)
			}
			out = append(out, store.Recipient{Pubkey: pk, Error: text})
		case !resp.GetDelivered():
			out = append(out, store.Recipient{Pubkey: pk, Error: "notification error: gift-wrap send failed: " + describeResults(resp.GetResults())})
		default:
			out = append(out, store.Recipient{Pubkey: pk, Sent: true})
			d.m.DispatchLatency.Observe(d.clock.Since(h.CreatedAt).Seconds())
		}
	}
	for _, r := range out {
		if !r.Sent {
			log.Warn("phase4_dispatch: recipient not reached", "solver", short(r.Pubkey), "error", r.Error)
		}
	}
	return out, nil
}

// sendFailure classifies a failed SendDirectMessage by the reason relaygw
// attached (pkg/relaygwclient), never by its message: a permanent failure
// (the same request fails the same way on every retry) is a failed
// recipient, recorded with text; anything else (relaygw unreachable, its
// store unavailable, a deadline, an internal error) is transient and the
// whole handoff is retried.
func sendFailure(err error) (text string, permanent bool) {
	msg := status.Convert(err).Message()
	switch {
	case relaygwclient.IsInvalidRecipient(err):
		return "invalid pubkey: " + msg, true
	case relaygwclient.IsPermanent(err):
		return "notification error: gift-wrap send failed: " + msg, true
	default:
		return "", false
	}
}

// IdempotencyKey is the relaygw idempotency key of one recipient's DM of
// one handoff: stable across retries, claims and replicas.
func IdempotencyKey(handoffEventID int64, recipientHex string) string {
	return fmt.Sprintf("escalation_handoff:%d:%s", handoffEventID, recipientHex)
}

func describeResults(results []*relaygwv1.PublishResult) string {
	if len(results) == 0 {
		return "no relay accepted the gift wrap"
	}
	parts := make([]string, 0, len(results))
	for _, r := range results {
		s := r.GetRelayUrl() + ": " + strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "PUBLISH_OUTCOME_"))
		if r.GetMessage() != "" {
			s += " (" + r.GetMessage() + ")"
		}
		parts = append(parts, s)
	}
	return "no relay accepted the gift wrap: " + strings.Join(parts, "; ")
}

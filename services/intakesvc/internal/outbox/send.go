package outbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/pkg/relaygwclient"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// sender sends queued DMs until ctx ends.
func (o *Outbox) sender(ctx context.Context) {
	for {
		var job *store.Job
		select {
		case <-ctx.Done():
			return
		case id := <-o.work:
			j, err := o.st.ClaimJob(ctx, id, o.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					o.log.Warn("claim notification job failed; the poller will retry it", "job_id", id, "error", err)
				}
				continue
			}
			job = j
		case j := <-o.claimed:
			job = &j
		case r := <-o.ready:
			r.job.QueuedSeconds += o.clock.Since(r.at).Seconds()
			job = &r.job
		}
		for job != nil && ctx.Err() == nil {
			next, ok := o.process(ctx, *job)
			if !ok {
				break
			}
			job = o.claimNext(ctx, next)
		}
	}
}

// claimNext claims the following DM to the same solver about the same
// dispute (DMs of one dispute reach a solver in order), if there is one.
func (o *Outbox) claimNext(ctx context.Context, id int64) *store.Job {
	if id == 0 {
		return nil
	}
	j, err := o.st.ClaimJob(ctx, id, o.cfg.Lease)
	if err != nil {
		return nil
	}
	return j
}

// attempt is what one send produced.
type attempt struct {
	// outcome is store.OutcomeSent, OutcomeFailed or OutcomeSkipped; ""
	// when nothing is to be recorded (ctx ended first, or an assignment's
	// body could not be kept): the DM is handed back and the same
	// idempotency key is used again.
	outcome string
	// errMsg is the error_message of a failed attempt.
	errMsg string
	// retry: a failure worth trying again.
	retry bool
}

// send makes one attempt.
func (o *Outbox) send(ctx context.Context, job store.Job) attempt {
	if job.NotifType == message.TypeRenotification && job.State != lifecycle.Notified {
		return attempt{outcome: store.OutcomeSkipped}
	}
	recipient, err := nostrkey.Normalize(job.SolverPubkey)
	if err != nil {
		return attempt{outcome: store.OutcomeFailed, errMsg: message.InvalidPubkeyError(err.Error())}
	}
	var body string
	if job.Body != nil {
		body = *job.Body
	} else {
		// First attempt of an assignment: the body is built now and kept,
		// so a retry under the same idempotency key sends the same bytes
		// even if Serbero's own take is recorded meanwhile (relaygw refuses
		// a key reused with another body).
		body, err = o.st.PinBody(ctx, job.ID, message.Assignment(job.DisputeID, job.AssignedSolver))
		if err != nil {
			if ctx.Err() == nil {
				o.log.Warn("keep assignment DM body failed; the DM is handed back and retried",
					"dispute_id", job.DisputeID, "job_id", job.ID, "error", err)
			}
			return attempt{}
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, o.cfg.SendTimeout)
	defer cancel()
	resp, err := o.rg.SendDirectMessage(callCtx, &relaygwv1.SendDirectMessageRequest{
		RecipientPubkey: recipient, Body: body, IdempotencyKey: job.IdempotencyKey,
	})
	if err != nil && ctx.Err() != nil {
		return attempt{}
	}
	if err != nil {
		return sendFailure(err)
	}
	if resp.GetDelivered() {
		return attempt{outcome: store.OutcomeSent}
	}
	return attempt{outcome: store.OutcomeFailed, errMsg: message.SendFailedError(describeResults(resp.GetResults())), retry: true}
}

// sendFailure classifies a SendDirectMessage error by relaygw's typed
// reason (pkg/relaygwclient), never by its text: an invalid recipient is
// recorded as the reference's invalid pubkey, any other permanent failure
// as a send failure; neither is retried. The text is only recorded, for
// operators. See docs/intake.md#the-outbox.
func sendFailure(err error) attempt {
	st := status.Convert(err)
	if relaygwclient.IsInvalidRecipient(err) {
		return attempt{outcome: store.OutcomeFailed, errMsg: message.InvalidPubkeyError(st.Message())}
	}
	return attempt{outcome: store.OutcomeFailed,
		errMsg: message.SendFailedError(fmt.Sprintf("relaygw: %s: %s", st.Code(), st.Message())),
		retry:  !relaygwclient.IsPermanent(err)}
}

// describeResults is the error text of a gift wrap no relay accepted.
func describeResults(rs []*relaygwv1.PublishResult) string {
	if len(rs) == 0 {
		return "no relay accepted the gift wrap (no relay answered)"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		p := r.GetRelayUrl() + ": " + strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "PUBLISH_OUTCOME_"))
		if r.GetMessage() != "" {
			p += " (" + r.GetMessage() + ")"
		}
		parts = append(parts, p)
	}
	return "no relay accepted the gift wrap: " + strings.Join(parts, "; ")
}

// retryDelay is the wait before attempt n+1 of a DM (n >= 1).
func (o *Outbox) retryDelay(n int) time.Duration {
	return o.cfg.RetryBase << min(n-1, 10)
}

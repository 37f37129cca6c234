// Package take records Serbero's own take of a dispute, as mediationsvc
// reports it around its admin-take-dispute: the intent holds the
// assignment DMs of an in-progress revision arriving meanwhile, a success
// makes Serbero the dispute's assigned solver (the one case where the
// assignment DM can name who took it), and either outcome releases the
// held DMs. See docs/intake.md#who-took-a-dispute.
package take

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Stage is a step of Serbero taking a dispute.
type Stage int

// The stages mediationsvc reports.
const (
	Intent Stage = iota + 1
	Succeeded
	Failed
)

// Deps are what the recorder works with.
type Deps struct {
	Store *store.Store
	// Relaygw tells Serbero's own pubkey (GetIdentity), asked once.
	Relaygw relaygwv1.RelayGatewayServiceClient
	// Outbox receives the released assignment DMs.
	Outbox *outbox.Outbox
	// Changes is fired when the dispute changed (assigned_solver).
	Changes *changefeed.Broadcast
	Logger  *slog.Logger
	Clock   clockwork.Clock
}

// Recorder records take stages.
type Recorder struct {
	st      *store.Store
	rg      relaygwv1.RelayGatewayServiceClient
	out     *outbox.Outbox
	changes *changefeed.Broadcast
	log     *slog.Logger
	clock   clockwork.Clock

	mu        sync.Mutex
	serberoPK string
}

// New builds a Recorder.
func New(deps Deps) *Recorder {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	changes := deps.Changes
	if changes == nil {
		changes = changefeed.NewBroadcast()
	}
	return &Recorder{st: deps.Store, rg: deps.Relaygw, out: deps.Outbox, changes: changes, log: log, clock: clock}
}

// Record records a stage of Serbero's own take of a dispute: Intent holds
// its assignment DMs until now+ttl; Succeeded records Serbero's pubkey as
// the assigned solver and releases them; Failed releases them. It returns
// the dispute after the update (store.ErrNotFound for an unknown one).
func (r *Recorder) Record(ctx context.Context, disputeID string, stage Stage, ttl time.Duration) (store.Dispute, error) {
	switch stage {
	case Intent:
		return r.st.RecordTakeIntent(ctx, disputeID, r.clock.Now().Add(ttl))
	case Succeeded, Failed:
		pk := ""
		if stage == Succeeded {
			var err error
			if pk, err = r.serberoPubkey(ctx); err != nil {
				return store.Dispute{}, err
			}
		}
		d, released, err := r.st.RecordTakeOutcome(ctx, disputeID, pk)
		if err != nil {
			return d, err
		}
		if pk != "" {
			r.log.Info("serbero take recorded", "dispute_id", disputeID, "assigned_solver", pk)
			r.changes.Fire()
		}
		if r.out != nil {
			r.out.Dispatch(released)
		}
		return d, nil
	default:
		return store.Dispute{}, fmt.Errorf("unknown take stage %d", stage)
	}
}

// serberoPubkey asks relaygw for Serbero's pubkey once.
func (r *Recorder) serberoPubkey(ctx context.Context) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.serberoPK != "" {
		return r.serberoPK, nil
	}
	resp, err := r.rg.GetIdentity(ctx, &relaygwv1.GetIdentityRequest{})
	if err != nil {
		return "", fmt.Errorf("get serbero identity from relaygw: %w", err)
	}
	r.serberoPK = resp.GetPubkeyHex()
	return r.serberoPK, nil
}

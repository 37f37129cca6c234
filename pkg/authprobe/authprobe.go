// Package authprobe is the client side of authsvc's authorization check,
// for mediationsvc: it turns real admin-take-dispute attempts into the
// evidence authsvc decides on. It depends only on the generated gRPC
// clients; the contract is written in docs/authorization.md#the-probe.
//
// Two pieces:
//
//   - TakeAndReport sends admin-take-dispute through relaygw and reports the
//     outcome to authsvc (ReportTakeOutcome). mediationsvc uses it for every
//     take, so authsvc sees every answer Mostro gives.
//   - Prober watches authsvc's state (WatchState). When authsvc grants a
//     probe (AuthState.probe_id set and not yet claimed) it asks Pick for
//     the dispute mediationsvc would take right now if it were authorized,
//     claims the probe for it under its claimer id (ClaimProbe; only one
//     prober across all mediationsvc replicas wins, even when several picked
//     the same dispute), takes it with TakeAndReport, and hands a
//     successful take to OnTook so mediationsvc goes on with that dispute's
//     session. With nothing eligible it waits for Kick (call it when a
//     dispute becomes eligible) or RetryInterval and asks again, for as long
//     as the probe is open.
//
// A probe is never a gratuitous take: Pick must return only a dispute
// mediationsvc would take anyway (eligible, initiated, positive reasoning
// verdict); the gate refusing it only because authsvc is not Authorized is
// exactly the case a probe exists for.
//
// Mostro answers cant-do invalid_pubkey both to a pubkey that is not a
// solver and to a solver taking a dispute someone else took first. authsvc
// counts it against Serbero only when the dispute was still initiated, so
// the report must carry the newest status the caller knows after the
// answer: give TakeOptions.DisputeStatus (Options.DisputeStatus for a
// Prober), which is asked again after StatusSettle when it still says
// initiated, in case the other solver's in-progress revision is on its way.
package authprobe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/replica"
	"github.com/serbero/serbero/pkg/retry"
)

// DefaultTakeTimeout is how long relaygw waits for Mostro's reply (the
// reference's take-flow timeout).
const DefaultTakeTimeout = 15 * time.Second

// DefaultStatusSettle is how long after a cant-do invalid_pubkey for a
// dispute still known as initiated TakeAndReport waits before it asks for
// the dispute's status again: Mostro publishes the in-progress revision of
// a dispute another solver took moments before, and it travels relay →
// relaygw → intakesvc → mediationsvc.
const DefaultStatusSettle = 5 * time.Second

// DefaultRetryInterval is the default Options.RetryInterval.
const DefaultRetryInterval = 5 * time.Second

// StatusInitiated is the kind 38386 status of a dispute no solver holds.
const StatusInitiated = "initiated"

// Candidate is a dispute mediationsvc would take now.
type Candidate struct {
	// DisputeID is the dispute id (a UUID).
	DisputeID string
	// Status is the newest kind 38386 status known for it when it was
	// picked (normally "initiated"); reported unless DisputeStatus says
	// newer.
	Status string
}

// Outcome is what a take produced.
type Outcome struct {
	// Reported is the outcome authsvc was told (UNSPECIFIED when the take
	// produced no evidence, e.g. relaygw could not publish it).
	Reported authsvcv1.TakeOutcome
	// CantDoReason is the reason of a cant-do.
	CantDoReason string
	// DisputeStatus is the dispute status reported with it.
	DisputeStatus string
	// Response is relaygw's response when Mostro replied.
	Response *relaygwv1.SendMostroRequestResponse
	// State is authsvc's state after the report (nil when not reported).
	State *authsvcv1.AuthState
}

// Took reports whether Mostro answered admin-took-dispute.
func (o Outcome) Took() bool { return o.Reported == authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK }

// ErrNoEvidence is returned by TakeAndReport when the take could not be
// sent or answered for reasons that say nothing about Mostro (relaygw or
// the relays unavailable); nothing was reported.
var ErrNoEvidence = errors.New("the take produced no evidence")

// StatusFunc returns the newest kind 38386 status the caller knows for a
// dispute ("" when it knows none).
type StatusFunc func(ctx context.Context, disputeID string) (string, error)

// TakeOptions tune one take.
type TakeOptions struct {
	// ProbeID is the probe the take answers, if it is one.
	ProbeID string
	// Timeout bounds the wait for Mostro's reply (default 15 s).
	Timeout time.Duration
	// FirstContact asks relaygw to mine the node's pow_first_contact
	// difficulty. mostrod (v2) demands it from every sender outside its
	// active set (parties of open orders, solvers of disputes in progress),
	// so a solver that holds no dispute in progress is first contact on
	// every request, even after the node answered it. Probes always set it.
	FirstContact bool
	// DisputeStatus, if set, is asked for the dispute's status after a
	// cant-do invalid_pubkey; while it says initiated (or fails) it is asked
	// once more after StatusSettle. Without it the candidate's status is
	// reported, and a dispute another solver took moments before counts as
	// evidence against Serbero.
	DisputeStatus StatusFunc
	// StatusSettle is the wait before asking DisputeStatus again (default
	// DefaultStatusSettle; negative: no second question).
	StatusSettle time.Duration
	// Clock times the observation and the settle wait; nil is the real
	// clock.
	Clock clockwork.Clock
}

// TakeAndReport sends admin-take-dispute for c through relaygw, waits for
// Mostro's reply, and reports the outcome to authsvc. A reply
// (admin-took-dispute or cant-do) and relaygw's "no reply within the
// timeout" are reported; failures to publish or to reach relaygw are not
// (ErrNoEvidence).
func TakeAndReport(ctx context.Context, rg relaygwv1.RelayGatewayServiceClient, auth authsvcv1.AuthServiceClient,
	c Candidate, o TakeOptions) (Outcome, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTakeTimeout
	}
	clock := o.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	// relaygw's own wait ends first, so a DeadlineExceeded is Mostro's
	// silence, not this call's deadline.
	cctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	resp, err := rg.SendMostroRequest(cctx, &relaygwv1.SendMostroRequestRequest{
		Action:       relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE,
		Id:           c.DisputeID,
		Timeout:      durationpb.New(timeout),
		FirstContact: o.FirstContact,
	})
	callErr := cctx.Err()
	cancel()
	observed := clock.Now()
	out := Outcome{Response: resp, DisputeStatus: c.Status}
	switch {
	case err == nil && resp.GetReply().GetTookDispute() != nil, err == nil && resp.GetReply().GetAction() == "admin-took-dispute":
		out.Reported = authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK
	case err == nil && (resp.GetReply().GetCantDo() != nil || resp.GetReply().GetAction() == "cant-do"):
		out.Reported = authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO
		out.CantDoReason = resp.GetReply().GetCantDo().GetReason()
	case err == nil:
		return out, fmt.Errorf("%w: unexpected reply action %q", ErrNoEvidence, resp.GetReply().GetAction())
	case status.Code(err) == codes.DeadlineExceeded && callErr == nil:
		out.Reported = authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY
	default:
		return out, fmt.Errorf("%w: send admin-take-dispute: %w", ErrNoEvidence, err)
	}
	if out.CantDoReason == "invalid_pubkey" && o.DisputeStatus != nil {
		out.DisputeStatus = settledStatus(ctx, clock, c, o)
	}
	rep, err := auth.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
		DisputeId:     c.DisputeID,
		Outcome:       out.Reported,
		CantDoReason:  out.CantDoReason,
		ObservedAt:    timestamppb.New(observed),
		ProbeId:       o.ProbeID,
		DisputeStatus: out.DisputeStatus,
	})
	if err != nil {
		return out, fmt.Errorf("report take outcome to authsvc: %w", err)
	}
	out.State = rep.GetState()
	return out, nil
}

// settledStatus is the dispute status to report with an invalid_pubkey:
// the caller's newest, asked again after the settle wait while it still
// says initiated. A failing question falls back to what is known.
func settledStatus(ctx context.Context, clock clockwork.Clock, c Candidate, o TakeOptions) string {
	known := c.Status
	ask := func() bool { // reports whether the dispute is no longer initiated
		st, err := o.DisputeStatus(ctx, c.DisputeID)
		if err == nil && st != "" {
			known = st
		}
		return known != "" && known != StatusInitiated
	}
	if ask() {
		return known
	}
	settle := o.StatusSettle
	if settle == 0 {
		settle = DefaultStatusSettle
	}
	if settle < 0 || !retry.Sleep(ctx, clock, settle) {
		return known
	}
	ask()
	return known
}

// Options configures a Prober.
type Options struct {
	// Auth is authsvc.
	Auth authsvcv1.AuthServiceClient
	// Relaygw sends the take.
	Relaygw relaygwv1.RelayGatewayServiceClient
	// Pick returns the dispute mediationsvc would take right now if it
	// were authorized; ok false when there is none.
	Pick func(ctx context.Context) (c Candidate, ok bool, err error)
	// OnTook, if set, receives a probe whose take succeeded: the dispute is
	// now Serbero's, mediationsvc should go on with it.
	OnTook func(ctx context.Context, c Candidate, out Outcome)
	// DisputeStatus and StatusSettle are passed to every TakeAndReport
	// (see TakeOptions).
	DisputeStatus StatusFunc
	StatusSettle  time.Duration
	// Logger receives the prober's log lines.
	Logger *slog.Logger
	// TakeTimeout bounds the wait for Mostro's reply (default 15 s).
	TakeTimeout time.Duration
	// RetryInterval is how often Pick is asked again while a probe is open
	// and nothing was eligible, and the pause before re-opening a broken
	// WatchState stream (default 5 s).
	RetryInterval time.Duration
	// ClaimerID identifies this prober in ClaimProbe. It must differ from
	// every other prober's and stay the same for the life of the process;
	// the default (replica.ID, fixed at New) does both.
	ClaimerID string
	// Clock paces the retries; nil is the real clock.
	Clock clockwork.Clock
}

// Prober runs probes for authsvc.
type Prober struct {
	o    Options
	kick chan struct{}

	mu    sync.Mutex
	state *authsvcv1.AuthState
	wake  chan struct{}
}

// New returns a prober; call Run.
func New(o Options) *Prober {
	if o.TakeTimeout <= 0 {
		o.TakeTimeout = DefaultTakeTimeout
	}
	if o.RetryInterval <= 0 {
		o.RetryInterval = DefaultRetryInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("component", "authprobe")
	if o.ClaimerID == "" {
		o.ClaimerID = replica.ID("authprobe")
	}
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	return &Prober{o: o, kick: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

// ClaimerID returns the identity this prober claims probes with.
func (p *Prober) ClaimerID() string { return p.o.ClaimerID }

// Kick says a dispute may have become eligible: an open probe is tried now.
func (p *Prober) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// State returns the newest authsvc state seen (nil before the first).
func (p *Prober) State() *authsvcv1.AuthState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Run watches authsvc and runs granted probes until ctx ends.
func (p *Prober) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.watch(ctx)
	}()
	p.work(ctx)
	wg.Wait()
	return nil
}

// watch keeps a WatchState stream open and records every state.
func (p *Prober) watch(ctx context.Context) {
	for ctx.Err() == nil {
		stream, err := p.o.Auth.WatchState(ctx, &authsvcv1.WatchStateRequest{})
		if err == nil {
			for {
				var msg *authsvcv1.WatchStateResponse
				if msg, err = stream.Recv(); err != nil {
					break
				}
				p.mu.Lock()
				p.state = msg.GetState()
				p.mu.Unlock()
				select {
				case p.wake <- struct{}{}:
				default:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		p.o.Logger.Warn("authsvc state stream ended; reopening", "error", err, "retry_in", p.o.RetryInterval.String())
		if !retry.Sleep(ctx, p.o.Clock, p.o.RetryInterval) {
			return
		}
	}
}

// work runs a probe whenever one is open and unclaimed.
func (p *Prober) work(ctx context.Context) {
	for {
		st := p.State()
		if probe := st.GetProbeId(); probe != "" && st.GetProbeDisputeId() == "" {
			p.try(ctx, probe)
		}
		var (
			retryC <-chan time.Time
			timer  clockwork.Timer
		)
		if st := p.State(); st.GetProbeId() != "" && st.GetProbeDisputeId() == "" {
			timer = p.o.Clock.NewTimer(p.o.RetryInterval)
			retryC = timer.Chan()
		}
		select {
		case <-ctx.Done():
		case <-p.wake:
		case <-p.kick:
		case <-retryC:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// try runs probe once if a dispute is eligible.
func (p *Prober) try(ctx context.Context, probe string) {
	log := p.o.Logger.With("probe_id", probe)
	c, ok, err := p.o.Pick(ctx)
	if err != nil {
		log.Warn("probe: picking a dispute failed", "error", err)
		return
	}
	if !ok {
		log.Debug("probe: no eligible dispute yet")
		return
	}
	claim, err := p.o.Auth.ClaimProbe(ctx, &authsvcv1.ClaimProbeRequest{ProbeId: probe, DisputeId: c.DisputeID, ClaimerId: p.o.ClaimerID})
	if err != nil {
		log.Warn("probe: claim failed", "error", err, "dispute_id", c.DisputeID)
		return
	}
	if !claim.GetGranted() {
		log.Debug("probe: claimed by another prober or no longer open", "dispute_id", c.DisputeID)
		return
	}
	log.Info("probe: taking a dispute to check solver authorization", "dispute_id", c.DisputeID)
	out, err := TakeAndReport(ctx, p.o.Relaygw, p.o.Auth, c, TakeOptions{
		ProbeID: probe, Timeout: p.o.TakeTimeout, FirstContact: true,
		DisputeStatus: p.o.DisputeStatus, StatusSettle: p.o.StatusSettle, Clock: p.o.Clock,
	})
	if err != nil {
		log.Warn("probe: take produced no report", "error", err, "dispute_id", c.DisputeID)
		return
	}
	log.Info("probe: outcome reported", "dispute_id", c.DisputeID, "outcome", out.Reported.String(),
		"cant_do_reason", out.CantDoReason, "dispute_status", out.DisputeStatus, "state", out.State.GetState().String())
	if out.Took() && p.o.OnTook != nil {
		p.o.OnTook(ctx, c, out)
	}
}

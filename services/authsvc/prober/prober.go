// Package prober is the mediationsvc side of authsvc's authorization check:
// it turns real admin-take-dispute attempts into the evidence authsvc
// decides on.
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
package prober

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
)

// DefaultTakeTimeout is how long relaygw waits for Mostro's reply (the
// reference's take-flow timeout).
const DefaultTakeTimeout = 15 * time.Second

// Candidate is a dispute mediationsvc would take now.
type Candidate struct {
	// DisputeID is the dispute id (a UUID).
	DisputeID string
	// Status is the newest kind 38386 status known for it (normally
	// "initiated"); authsvc needs it to judge a cant-do invalid_pubkey.
	Status string
}

// Outcome is what a take produced.
type Outcome struct {
	// Reported is the outcome authsvc was told (UNSPECIFIED when the take
	// produced no evidence, e.g. relaygw could not publish it).
	Reported authsvcv1.TakeOutcome
	// CantDoReason is the reason of a cant-do.
	CantDoReason string
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
	observed := time.Now()
	out := Outcome{Response: resp}
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
	rep, err := auth.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
		DisputeId:     c.DisputeID,
		Outcome:       out.Reported,
		CantDoReason:  out.CantDoReason,
		ObservedAt:    timestamppb.New(observed),
		ProbeId:       o.ProbeID,
		DisputeStatus: c.Status,
	})
	if err != nil {
		return out, fmt.Errorf("report take outcome to authsvc: %w", err)
	}
	out.State = rep.GetState()
	return out, nil
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
	// the default (host, pid and a random suffix, fixed at New) does both.
	ClaimerID string
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
		o.RetryInterval = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClaimerID == "" {
		o.ClaimerID = defaultClaimerID()
	}
	return &Prober{o: o, kick: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
}

// defaultClaimerID is host-pid-random: distinct across replicas and across
// probers of one process, fixed for the prober's life.
func defaultClaimerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
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
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.o.RetryInterval):
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
		var retry <-chan time.Time
		if st := p.State(); st.GetProbeId() != "" && st.GetProbeDisputeId() == "" {
			retry = time.After(p.o.RetryInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-p.kick:
		case <-retry:
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
	out, err := TakeAndReport(ctx, p.o.Relaygw, p.o.Auth, c, TakeOptions{ProbeID: probe, Timeout: p.o.TakeTimeout, FirstContact: true})
	if err != nil {
		log.Warn("probe: take produced no report", "error", err, "dispute_id", c.DisputeID)
		return
	}
	log.Info("probe: outcome reported", "dispute_id", c.DisputeID, "outcome", out.Reported.String(),
		"cant_do_reason", out.CantDoReason, "state", out.State.GetState().String())
	if out.Took() && p.o.OnTook != nil {
		p.o.OnTook(ctx, c, out)
	}
}

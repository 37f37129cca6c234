package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/authprobe"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// tryStart is one start attempt for a dispute (both triggers): claim,
// gates, the reasoning verdict, the take, the session. See
// docs/mediation.md#opening-a-session for the order of the audit rows.
func (e *Engine) tryStart(ctx context.Context, id, trigger string) {
	d, ok, err := e.o.Store.ClaimStart(ctx, id, e.o.Holder, e.o.StartClaimTTL, true)
	if err != nil {
		e.log.Warn("start: claim failed; the tick retries", "dispute_id", id, "error", err)
		return
	}
	if !ok {
		return // another replica has it, or not pending, or backing off
	}
	log := e.log.With("dispute_id", id, "trigger", trigger)
	if !d.Eligible() {
		_ = e.o.Store.ReleaseStart(ctx, id, e.o.Holder)
		return
	}
	if err := e.appendAudit(ctx, e.o.Pool, audit.Event{Payload: audit.StartAttemptStarted{DisputeID: id, Trigger: trigger}}); err != nil {
		log.Warn("start: writing start_attempt_started failed; retrying later", "error", err)
		_ = e.o.Store.ReleaseStart(ctx, id, e.o.Holder)
		return
	}
	e.o.Metrics.startAttempts.Inc()

	// Gate 1: authorization, as authsvc last said (watched, not polled).
	st := e.prober.State()
	probe := ""
	switch st.GetState() {
	case authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED:
	case authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED:
		e.stopStart(ctx, log, d, audit.StopReasonAuthTerminated)
		return
	default:
		// Pending. An open probe asks for one real take: this dispute is
		// a candidate if the verdict below is positive.
		if st.GetProbeId() == "" || st.GetProbeDisputeId() != "" {
			e.stopStart(ctx, log, d, audit.StopReasonAuthPending)
			return
		}
		probe = st.GetProbeId()
	}
	// Gate 2: the provider's health (cached).
	if err := e.o.Core.Health(ctx); err != nil {
		log.Info("start stopped: reasoning provider unhealthy", "error_category", string(reasoning.CategoryOf(err)))
		e.stopStart(ctx, log, d, audit.StopReasonReasoningUnhealthy)
		return
	}
	// The verdict first: never a take without it.
	b := e.o.Core.Bundle()
	cls, err := e.o.Core.Classify(ctx, reasoner.ClassifyInput{
		DisputeID: id, InitiatorRole: d.InitiatorRole, Bundle: b, Round: policy.Initial(),
	})
	if err != nil {
		_ = e.appendAudit(ctx, e.o.Pool, audit.Event{Payload: audit.ReasoningCallFailed{
			DisputeID: id, AttemptCount: 1, ErrorCategory: string(reasoning.CategoryOf(err)),
			Model: e.o.Core.Model(), Provider: e.o.Core.ProviderName(),
		}, PromptBundleID: &b.ID, PolicyHash: &b.PolicyHash})
		// Our change: a failed call leaves the dispute eligible (retried
		// after a backoff) instead of escalating it for good.
		e.stopStart(ctx, log, d, audit.StopReasonReasoningError)
		return
	}
	occ, err := e.o.Core.RecordRationale(ctx, e.o.Pool, cls.Response.Rationale, reasoner.Scope{
		DisputeID: id, Operation: store.OperationClassify, Bundle: cls.Bundle,
		Key: fmt.Sprintf("open:%s:%d", id, d.Attempts+1),
	})
	if err != nil {
		log.Warn("start: storing the rationale failed; retrying later", "error", err)
		_ = e.o.Store.ReleaseStart(ctx, id, e.o.Holder)
		return
	}
	dec := cls.Decision
	_ = e.appendAudit(ctx, e.o.Pool, audit.Event{Payload: verdict(id, dec), PromptBundleID: &cls.Bundle.ID, PolicyHash: &cls.Bundle.PolicyHash})

	if dec.Outcome == policy.OutcomeEscalate {
		e.escalateBeforeTake(ctx, log, d, dec, occ.RationaleID, cls.Bundle)
		return
	}

	// The take. Only a dispute whose newest revision is initiated.
	if probe != "" {
		claim, err := e.o.Auth.ClaimProbe(ctx, &authsvcv1.ClaimProbeRequest{ProbeId: probe, DisputeId: id, ClaimerId: e.o.Holder})
		if err != nil || !claim.GetGranted() {
			e.stopStart(ctx, log, d, audit.StopReasonAuthPending)
			return
		}
		log.Info("probe: taking a dispute to check solver authorization", "probe_id", probe)
	}
	info, reason := e.take(ctx, d, probe)
	if info == nil {
		_ = e.appendAudit(ctx, e.o.Pool, audit.Event{Payload: audit.TakeFailed(id, reason), PromptBundleID: &cls.Bundle.ID, PolicyHash: &cls.Bundle.PolicyHash})
		log.Info("start stopped: the take did not succeed", "reason", reason)
		e.stopStart(ctx, log, d, audit.StopReasonTakeFailed)
		return
	}
	_ = e.appendAudit(ctx, e.o.Pool, audit.Event{Payload: audit.TakeSucceeded(id), PromptBundleID: &cls.Bundle.ID, PolicyHash: &cls.Bundle.PolicyHash})
	e.openSession(ctx, log, d, cls, occ, info)
}

// take sends admin-take-dispute (reporting the outcome to authsvc) and
// returns the dispute info, or nil and why not.
func (e *Engine) take(ctx context.Context, d store.Dispute, probe string) (*relaygwv1.SolverDisputeInfo, string) {
	id := d.DisputeID
	if _, err := e.o.Intake.RecordSerberoTake(ctx, &intakesvcv1.RecordSerberoTakeRequest{
		DisputeId: id, Stage: intakesvcv1.TakeStage_TAKE_STAGE_INTENT, IntentTtl: durationpb.New(e.o.TakeTimeout + 45e9),
	}); err != nil {
		e.log.Warn("start: telling intakesvc about the take failed; the assignment DM may say unknown", "dispute_id", id, "error", err)
	}
	out, err := authprobe.TakeAndReport(ctx, e.o.Relaygw, e.o.Auth, authprobe.Candidate{DisputeID: id, Status: d.Status},
		authprobe.TakeOptions{
			ProbeID: probe, Timeout: e.o.TakeTimeout, FirstContact: true, DisputeStatus: e.disputeStatus,
			StatusSettle: e.o.StatusSettle, Clock: e.o.Clock,
		})
	var info *relaygwv1.SolverDisputeInfo
	reason := ""
	switch {
	case err != nil:
		reason = "take produced no answer: " + err.Error()
	case out.Took():
		info = out.Response.GetReply().GetTookDispute()
		switch {
		case info == nil:
			reason = "admin-took-dispute without dispute info"
		case info.GetBuyerPubkey() == "":
			info, reason = nil, "SolverDisputeInfo missing buyer_pubkey"
		case info.GetSellerPubkey() == "":
			info, reason = nil, "SolverDisputeInfo missing seller_pubkey"
		case strings.EqualFold(info.GetBuyerPubkey(), info.GetSellerPubkey()):
			info, reason = nil, "SolverDisputeInfo has identical buyer and seller trade pubkey"
		}
	case out.CantDoReason != "":
		reason = "Mostro refused AdminTakeDispute: cant-do " + out.CantDoReason
	default:
		reason = "timed out waiting for AdminTookDispute response from Mostro"
	}
	e.o.Metrics.takes.WithLabelValues(takeLabel(info != nil, out.CantDoReason, err)).Inc()
	stage := intakesvcv1.TakeStage_TAKE_STAGE_FAILED
	if info != nil {
		stage = intakesvcv1.TakeStage_TAKE_STAGE_SUCCEEDED
	}
	if _, err := e.o.Intake.RecordSerberoTake(ctx, &intakesvcv1.RecordSerberoTakeRequest{DisputeId: id, Stage: stage}); err != nil {
		e.log.Warn("start: telling intakesvc the take's outcome failed", "dispute_id", id, "error", err)
	}
	return info, reason
}

func takeLabel(took bool, cantDo string, err error) string {
	switch {
	case took:
		return "took"
	case err != nil:
		return "no_evidence"
	case cantDo != "":
		return "cant_do"
	default:
		return "no_reply"
	}
}

// disputeStatus is authprobe's StatusFunc: the newest status intakesvc
// knows.
func (e *Engine) disputeStatus(ctx context.Context, id string) (string, error) {
	resp, err := e.o.Intake.GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: id})
	if err != nil {
		return "", err
	}
	return resp.GetDispute().GetDisputeStatus(), nil
}

func verdict(id string, d policy.Decision) audit.Payload {
	switch d.Outcome {
	case policy.OutcomeSummarize:
		return audit.VerdictSummarize(id, string(d.Classification), d.Confidence)
	case policy.OutcomeEscalate:
		return audit.VerdictEscalate(id, string(d.Trigger))
	default:
		return audit.VerdictAskClarification(id)
	}
}

// stopStart records a start that stopped before a session and backs off.
func (e *Engine) stopStart(ctx context.Context, log interface {
	Warn(string, ...any)
}, d store.Dispute, reason string) {
	_ = e.appendAudit(ctx, e.o.Pool, audit.Event{Payload: audit.StartAttemptStopped{DisputeID: d.DisputeID, StopReason: reason}})
	backoff := session.StartBackoff(d.Attempts+1, e.o.StartBackoffBase, e.o.StartBackoffMax)
	if err := e.o.Store.StopStart(ctx, d.DisputeID, e.o.Holder, reason, backoff); err != nil {
		log.Warn("start: recording the stop failed; the claim expires by itself", "error", err)
	}
	e.o.Metrics.startStops.WithLabelValues(reason).Inc()
}

// escalateBeforeTake hands a dispute the verdict refused to a human: no
// take, no session; the dispute is not mediated again.
func (e *Engine) escalateBeforeTake(ctx context.Context, log interface {
	Warn(string, ...any)
}, d store.Dispute, dec policy.Decision, rationaleID string, b bundle.Bundle) {
	now := e.now()
	err := e.o.Store.InTx(ctx, func(tx pgx.Tx) error {
		if err := e.appendAudit(ctx, tx, audit.Event{Payload: audit.StartAttemptPolicyEscalate{DisputeID: d.DisputeID, Trigger: string(dec.Trigger)},
			PromptBundleID: &b.ID, PolicyHash: &b.PolicyHash, OccurredAt: now}); err != nil {
			return err
		}
		var refs []string
		if rationaleID != "" {
			refs = []string{rationaleID}
		}
		if err := e.recommend(ctx, tx, escalation{disputeID: d.DisputeID, trigger: string(dec.Trigger), rationaleRefs: refs, bundle: b, at: now}); err != nil {
			return err
		}
		return e.o.Store.SetStartState(ctx, tx, d.DisputeID, store.StartEscalated, "")
	})
	if err != nil {
		log.Warn("start: escalating before the take failed; retrying later", "error", err)
		_ = e.o.Store.ReleaseStart(ctx, d.DisputeID, e.o.Holder)
		return
	}
	e.o.Metrics.escalations.WithLabelValues(string(dec.Trigger)).Inc()
	e.log.Warn("escalation_recommended", "dispute_id", d.DisputeID, "trigger", string(dec.Trigger), "scope", "dispute")
	if !e.o.EscalationEnabled {
		e.sendToAll(ctx, d.DisputeID, "", session.DisputeEscalationDM(d.DisputeID, string(dec.Trigger)), notifEscalation, "escalation-before-take")
	}
}

// openSession commits the session after a successful take and starts its
// worker, which sends the opening question (or delivers the summary).
func (e *Engine) openSession(ctx context.Context, log interface {
	Warn(string, ...any)
	Info(string, ...any)
}, d store.Dispute, cls reasoner.Classification, occ store.RationaleOccurrence, info *relaygwv1.SolverDisputeInfo) {
	buyer, seller := strings.ToLower(info.GetBuyerPubkey()), strings.ToLower(info.GetSellerPubkey())
	bch, err := e.o.Relaygw.GetChatChannel(ctx, &relaygwv1.GetChatChannelRequest{PartyTradePubkey: buyer})
	if err != nil {
		log.Warn("start: the buyer's chat channel cannot be formed; retrying later", "error", err)
		e.stopStart(ctx, log, d, audit.StopReasonTakeFailed)
		return
	}
	sch, err := e.o.Relaygw.GetChatChannel(ctx, &relaygwv1.GetChatChannelRequest{PartyTradePubkey: seller})
	if err != nil {
		log.Warn("start: the seller's chat channel cannot be formed; retrying later", "error", err)
		e.stopStart(ctx, log, d, audit.StopReasonTakeFailed)
		return
	}
	dec, b, now := cls.Decision, cls.Bundle, e.now()
	sid := uuid.NewString()
	state := session.AwaitingResponse
	if dec.Outcome == policy.OutcomeSummarize {
		state = session.Classified
	}
	var sess store.EngineSession
	err = e.o.Store.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		sess, err = e.o.Store.InsertSession(ctx, tx, store.NewSession{
			SessionID: sid, DisputeID: d.DisputeID, State: string(session.AwaitingResponse), InitiatorRole: d.InitiatorRole,
			PromptBundleID: b.ID, PolicyHash: b.PolicyHash, BuyerTrade: buyer, SellerTrade: seller,
			BuyerShared: bch.GetChannel().GetV1SharedPubkey(), SellerShared: sch.GetChannel().GetV1SharedPubkey(),
			ChatCursor: e.chat.position(), StartedAt: now, DetectedAt: d.DetectedAt, Holder: e.o.Holder, LeaseTTL: e.o.LeaseTTL,
		})
		if err != nil {
			return err
		}
		if err := e.appendAudit(ctx, tx, audit.Event{SessionID: &sid, Payload: audit.SessionOpened{}, PromptBundleID: &b.ID, PolicyHash: &b.PolicyHash, OccurredAt: now}); err != nil {
			return err
		}
		if err := e.o.Core.BindRationale(ctx, tx, occ, sid); errors.Is(err, store.ErrRationaleBound) {
			// Provenance only: the session goes on; the occurrence keeps its
			// dispute and the audit row below names the rationale.
			log.Warn("start: the opening rationale occurrence is bound elsewhere; not binding it to the session",
				"session_id", sid, "occurrence_id", occ.ID)
		} else if err != nil {
			return err
		}
		rid := occ.RationaleID
		if err := e.appendAudit(ctx, tx, audit.Event{SessionID: &sid, Payload: audit.ClassificationProduced{
			Classification: string(cls.Response.Classification), Confidence: cls.Response.Confidence, RationaleID: rid,
		}, RationaleID: &rid, PromptBundleID: &b.ID, PolicyHash: &b.PolicyHash, OccurredAt: now}); err != nil {
			return err
		}
		if state == session.Classified {
			if err := e.o.Store.Transition(ctx, tx, sid, []string{string(session.AwaitingResponse)}, string(session.Classified), now); err != nil {
				return err
			}
		} else if err := e.o.Store.QueueOutbound(ctx, tx,
			outboxItem(sid, session.Buyer, 0, session.OpeningBody(session.Buyer, dec.BuyerText), now),
			outboxItem(sid, session.Seller, 0, session.OpeningBody(session.Seller, dec.SellerText), now),
		); err != nil {
			return err
		}
		return e.o.Store.SetStartState(ctx, tx, d.DisputeID, store.StartStarted, "")
	})
	if errors.Is(err, store.ErrAlreadyOpen) {
		log.Info("start: the dispute already has a live session")
		_ = e.o.Store.ReleaseStart(ctx, d.DisputeID, e.o.Holder)
		return
	}
	if err != nil {
		// Mostro gave us the dispute but nothing was stored: the next
		// attempt takes it again (the holder may re-take).
		log.Warn("start: committing the session failed; retrying later", "error", err)
		e.stopStart(ctx, log, d, audit.StopReasonTakeFailed)
		return
	}
	sess.State = string(state)
	e.o.Metrics.opens.Inc()
	log.Info("mediation session opened", "session_id", sid, "classification", string(cls.Response.Classification),
		"decision", string(dec.Outcome))
	// Serbero's own take caused an in-progress revision; record which, so
	// a later one is recognised as a takeover.
	if resp, err := e.o.Intake.GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: d.DisputeID}); err == nil {
		if dd := resp.GetDispute(); dd.GetDisputeStatus() == "in-progress" && dd.GetNewestEventId() != "" {
			_, _ = e.o.Store.SetTakeEvent(ctx, e.o.Pool, sid, dd.GetNewestEventId())
			sess.TakeEventID = &dd.NewestEventId
		}
	}
	e.adopt(ctx, sess, &cls)
}

func outboxItem(sid string, p session.Party, round int, body string, now int64) store.OutboxItem {
	return store.OutboxItem{
		SessionID: sid, Party: string(p), Round: round, Body: body, CreatedAt: now,
		IdempotencyKey: fmt.Sprintf("mediation:%s:r%d:%s", sid, round, p),
	}
}

package revalidation

import (
	"fmt"
	"time"
)

// TakeOutcome is what the node answered to one admin-take-dispute.
type TakeOutcome int

// The take outcomes.
const (
	// TakeTook: admin-took-dispute.
	TakeTook TakeOutcome = iota + 1
	// TakeCantDo: cant-do, with a reason.
	TakeCantDo
	// TakeNoReply: no reply before the timeout.
	TakeNoReply
)

// DisputeInitiated is the kind 38386 status of a dispute no solver holds
// yet: the only one in which Mostro lets any registered solver take it.
const DisputeInitiated = "initiated"

// TakeReport is one take outcome as a reporter (mediationsvc) saw it.
type TakeReport struct {
	// DisputeID is the dispute that was taken.
	DisputeID string
	// Outcome is the node's answer.
	Outcome TakeOutcome
	// CantDoReason is the cant-do reason ("invalid_pubkey", …), if any.
	CantDoReason string
	// DisputeStatus is the newest kind 38386 status the reporter knew for
	// the dispute when it reported (after the answer); empty when it knew
	// none.
	DisputeStatus string
	// ObservedAt is when the answer came (zero: when it is applied).
	ObservedAt time.Time
}

// ClassifyTake turns a take report into evidence, saying which. Mostro
// answers cant-do invalid_pubkey both to a pubkey that is not a solver and
// to any solver taking a dispute that is no longer initiated (another
// solver took it first), so invalid_pubkey is evidence against Serbero
// only for a dispute the reporter still knew as initiated, or whose status
// it did not know (see docs/authorization.md#evidence).
func ClassifyTake(r TakeReport) Evidence {
	ev := Evidence{DisputeID: r.DisputeID, ObservedAt: r.ObservedAt}
	switch r.Outcome {
	case TakeTook:
		ev.Kind = EvidenceTookDispute
		ev.Summary = fmt.Sprintf("admin-took-dispute for dispute %s: the node accepts Serbero as a solver", r.DisputeID)
	case TakeNoReply:
		ev.Kind = EvidenceNoReply
		ev.Summary = fmt.Sprintf("no reply from the Mostro node to admin-take-dispute for dispute %s", r.DisputeID)
	default:
		reason, status := r.CantDoReason, r.DisputeStatus
		switch {
		case reason == "invalid_pubkey" && (status == "" || status == DisputeInitiated):
			ev.Kind = EvidenceCantDoInvalidPubkey
			ev.Summary = fmt.Sprintf("cant-do invalid_pubkey for dispute %s: the node does not accept Serbero as a solver", r.DisputeID)
		case reason == "invalid_pubkey":
			ev.Kind = EvidenceCantDoOther
			ev.Summary = fmt.Sprintf("cant-do invalid_pubkey for dispute %s in status %s: inconclusive (the node refuses every solver a dispute that is no longer initiated)", r.DisputeID, status)
		case reason == "not_authorized":
			ev.Kind = EvidenceCantDoNotAuthorized
			ev.Summary = fmt.Sprintf("cant-do not_authorized for dispute %s: the node does not authorize Serbero", r.DisputeID)
		default:
			if reason == "" {
				reason = "(no reason)"
			}
			ev.Kind = EvidenceCantDoOther
			ev.Summary = fmt.Sprintf("cant-do %s for dispute %s: inconclusive", reason, r.DisputeID)
		}
	}
	return ev
}

// Package message builds the texts intakesvc writes: the solver DMs of
// phases 1 and 2, byte for byte as the reference daemon (LF line ends, no
// trailing newline), their notif_type values, the error texts recorded for
// failed attempts and the idempotency keys handed to relaygw. See
// docs/intake.md#messages.
package message

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/serbero/serbero/pkg/notiflog"
)

// notif_type values written by intakesvc (pkg/notiflog's vocabulary).
const (
	TypeInitial        = string(notiflog.TypeInitial)
	TypeRenotification = string(notiflog.TypeRenotification)
	TypeAssignment     = string(notiflog.TypeAssignment)
)

// UnknownSolver is printed when the solver who took a dispute is unknown
// (always, unless Serbero took it itself: docs/intake.md#who-took-a-dispute).
const UnknownSolver = "unknown"

// Initial is the first DM about a new dispute. initiator is buyer, seller
// or unknown; eventTimestamp is the event's created_at in unix seconds.
func Initial(disputeID, initiator string, eventTimestamp int64) string {
	return "New Mostro dispute requires attention.\n" +
		"dispute_id: " + disputeID + "\n" +
		"initiator: " + initiator + "\n" +
		"event_timestamp: " + strconv.FormatInt(eventTimestamp, 10) + "\n" +
		"status: initiated"
}

// Renotification reminds solvers of a dispute nobody took.
// elapsedSeconds is now minus the dispute's event_timestamp.
func Renotification(disputeID string, elapsedSeconds int64) string {
	return "Mostro dispute is still unattended.\n" +
		"dispute_id: " + disputeID + "\n" +
		"lifecycle_state: notified\n" +
		"time_elapsed_seconds: " + strconv.FormatInt(elapsedSeconds, 10)
}

// Assignment tells solvers a dispute was taken. An empty assignedSolver
// prints the literal unknown.
func Assignment(disputeID, assignedSolver string) string {
	if assignedSolver == "" {
		assignedSolver = UnknownSolver
	}
	return "Mostro dispute has been taken.\n" +
		"dispute_id: " + disputeID + "\n" +
		"assigned_solver: " + assignedSolver + "\n" +
		"lifecycle_state: taken"
}

// InvalidPubkeyError is the error_message of an attempt to a solver whose
// configured pubkey does not parse.
func InvalidPubkeyError(detail string) string { return "invalid pubkey: " + detail }

// SendFailedError is the error_message of an attempt that no relay
// accepted (or that relaygw could not make).
func SendFailedError(detail string) string {
	return "notification error: gift-wrap send failed: " + detail
}

// IdempotencyKey is the relaygw idempotency key of one DM: one per
// (notification type, period, dispute, solver). The initial notification and
// the assignment have period 0 and keep their key across retries, so relaygw
// republishes the very same gift wrap instead of building a second message;
// each re-notification period has its own key. Dispute ids and configured
// pubkeys are free text, so they are hashed to keep the key short.
func IdempotencyKey(notifType string, period int64, disputeID, solver string) string {
	h := sha256.New()
	h.Write([]byte(disputeID))
	h.Write([]byte{0})
	h.Write([]byte(solver))
	var b strings.Builder
	b.WriteString("intakesvc:")
	b.WriteString(notifType)
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(period, 10))
	b.WriteByte(':')
	b.WriteString(hex.EncodeToString(h.Sum(nil)))
	return b.String()
}

// Keys are the idempotency keys of one batch, one per solver, in order.
func Keys(notifType string, period int64, disputeID string, solvers []string) []string {
	keys := make([]string, len(solvers))
	for i, sv := range solvers {
		keys[i] = IdempotencyKey(notifType, period, disputeID, sv)
	}
	return keys
}

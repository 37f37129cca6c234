package session

import (
	"math"
	"time"
)

// Party is who a message is from or for.
type Party string

// The parties of a session's chat.
const (
	Buyer   Party = "buyer"
	Seller  Party = "seller"
	Serbero Party = "serbero"
)

// Label is the party as it starts a party message: "Buyer", "Seller",
// "Serbero" (any other value unchanged).
func (p Party) Label() string {
	switch p {
	case Buyer:
		return "Buyer"
	case Seller:
		return "Seller"
	case Serbero:
		return "Serbero"
	}
	return string(p)
}

// RoundCount is the session's round count: one round is one fresh reply
// from each party, so it is the smaller of the two parties' counts of
// fresh (not stale) inbound messages.
func RoundCount(freshBuyer, freshSeller int64) int64 {
	return min(freshBuyer, freshSeller)
}

// RoundLimitReached reports whether a session with roundCount rounds has
// reached maxRounds (>=, so maxRounds 0 is reached by the first fresh
// reply, and (0, 0) is true).
func RoundLimitReached(roundCount, maxRounds int64) bool {
	return roundCount >= maxRounds
}

// IsStale reports whether an inbound message whose inner created_at is
// innerCreatedAt is stale for a party last seen at *lastSeen: strictly
// older (two messages in the same second are both fresh). A party never
// seen (nil) has no stale messages.
func IsStale(lastSeen *int64, innerCreatedAt int64) bool {
	return lastSeen != nil && innerCreatedAt < *lastSeen
}

// PartyTimedOut reports whether a live session has waited too long for the
// parties. Its reference time is the latest of startedAt and the two
// parties' last-seen inner timestamps (nil ones ignored), in Unix seconds
// like now; it has timed out when now > reference + timeout (strict). Any
// party's activity restarts the clock for both; Serbero's own messages do
// not. A timeout <= 0 disables the check (always false). Whole seconds
// count: a timeout of 1.5 s times out 2 s after the reference.
func PartyTimedOut(now, startedAt int64, buyerLastSeen, sellerLastSeen *int64, timeout time.Duration) bool {
	if timeout <= 0 {
		return false
	}
	ref := startedAt
	if buyerLastSeen != nil {
		ref = max(ref, *buyerLastSeen)
	}
	if sellerLastSeen != nil {
		ref = max(ref, *sellerLastSeen)
	}
	if now <= ref {
		return false
	}
	// now > ref, so the difference fits in a uint64 whatever the values.
	elapsed := uint64(now) - uint64(ref)
	if elapsed > uint64(math.MaxInt64/int64(time.Second)) {
		return true // longer than any time.Duration
	}
	return time.Duration(elapsed)*time.Second > timeout
}

// StartBackoff is how long to wait before start attempt number attempt of
// a dispute whose earlier attempts failed: base for attempt 1, doubling
// with each attempt, capped at limit (limit <= 0: no cap; the wait then
// saturates at the largest time.Duration). attempt <= 0 or base <= 0 is 0.
// The reference retried a failed start every 30 s forever; this spaces the
// retries out.
func StartBackoff(attempt int, base, limit time.Duration) time.Duration {
	if attempt <= 0 || base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < attempt; i++ {
		if limit > 0 && d >= limit {
			break
		}
		if d > math.MaxInt64/2 {
			d = math.MaxInt64
			break
		}
		d *= 2
	}
	if limit > 0 && d > limit {
		d = limit
	}
	return d
}

package session

import (
	"cmp"
	"slices"
)

// TranscriptCap is how many messages a transcript sent to the model holds
// at most: the newest ones.
const TranscriptCap = 40

// Message directions, as stored in mediation_messages.direction.
const (
	DirectionInbound  = "inbound"
	DirectionOutbound = "outbound"
)

// Message is one stored chat message of a session, as Transcript needs it.
type Message struct {
	// ID is the row id; it orders messages with the same InnerCreatedAt.
	ID int64
	// Direction is "inbound" (from a party) or "outbound" (Serbero's).
	Direction string
	// Party is the inbound message's author (buyer or seller). For an
	// outbound message it is the recipient and is not used.
	Party Party
	// InnerCreatedAt is the inner event's created_at (Unix seconds).
	InnerCreatedAt int64
	// Content is the message text.
	Content string
	// Stale marks an inbound message older than its party's last seen one.
	Stale bool
}

// Line is one transcript line.
type Line struct {
	Party          Party
	InnerCreatedAt int64
	Content        string
}

// Transcript returns the lines the model sees: the newest limit non-stale
// messages, oldest first, ordered by InnerCreatedAt and then ID. Outbound
// messages are tagged serbero; inbound ones by their party. An inbound
// message whose party is neither buyer nor seller, and a message with any
// other direction, is dropped (it takes no place under the limit).
// limit <= 0 gives an empty transcript. msgs is not modified; the result is
// never nil.
func Transcript(msgs []Message, limit int) []Line {
	if limit <= 0 {
		return []Line{}
	}
	kept := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if m.Stale {
			continue
		}
		switch m.Direction {
		case DirectionOutbound:
			m.Party = Serbero
		case DirectionInbound:
			if m.Party != Buyer && m.Party != Seller {
				continue
			}
		default:
			continue
		}
		kept = append(kept, m)
	}
	slices.SortStableFunc(kept, func(a, b Message) int {
		return cmp.Or(cmp.Compare(a.InnerCreatedAt, b.InnerCreatedAt), cmp.Compare(a.ID, b.ID))
	})
	if len(kept) > limit {
		kept = kept[len(kept)-limit:]
	}
	lines := make([]Line, len(kept))
	for i, m := range kept {
		lines[i] = Line{Party: m.Party, InnerCreatedAt: m.InnerCreatedAt, Content: m.Content}
	}
	return lines
}

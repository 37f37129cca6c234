package mostro

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nbd-wtf/go-nostr"
)

// NodeInfo is what Serbero reads from a node's kind-38385 info event.
type NodeInfo struct {
	// Pubkey is the node's key (the event author and its d tag).
	Pubkey string
	// ProtocolVersion is the advertised version as is (1 or 2 today; a
	// newer node may say more: check Supported); a missing tag means 1.
	ProtocolVersion int
	// ProtocolVersionTagged reports whether the tag was present.
	ProtocolVersionTagged bool
	// PoW is the difficulty every inbound event must meet.
	PoW int
	// PoWFirstContact is the difficulty for senders the node does not
	// know yet (v2); a missing tag falls back to PoW. It is never below PoW.
	PoWFirstContact int
	// PoWFirstContactTagged reports whether that tag was present.
	PoWFirstContactTagged bool
	// MostroVersion is the daemon version ("" when absent).
	MostroVersion string
	// CreatedAt is the event's created_at.
	CreatedAt nostr.Timestamp
}

// Supported reports whether Serbero speaks the advertised protocol version.
func (n NodeInfo) Supported() bool {
	return n.ProtocolVersion == ProtocolV1 || n.ProtocolVersion == ProtocolV2
}

// ErrNotNodeInfo is returned for an event that is not a Mostro info event.
var ErrNotNodeInfo = errors.New("not a mostro node info event")

// ParseNodeInfo reads a kind-38385 event. It does not verify the signature
// or the author: do that first.
func ParseNodeInfo(evt nostr.Event) (NodeInfo, error) {
	if evt.Kind != KindInfo {
		return NodeInfo{}, fmt.Errorf("%w: kind %d", ErrNotNodeInfo, evt.Kind)
	}
	info := NodeInfo{Pubkey: evt.PubKey, ProtocolVersion: ProtocolV1, CreatedAt: evt.CreatedAt}
	for _, t := range evt.Tags {
		if len(t) < 2 {
			continue
		}
		switch t[0] {
		case "protocol_version":
			v, err := strconv.Atoi(t[1])
			if err != nil || v < 1 {
				return NodeInfo{}, fmt.Errorf("%w: protocol_version %q", ErrNotNodeInfo, t[1])
			}
			info.ProtocolVersion, info.ProtocolVersionTagged = v, true
		case "pow":
			v, err := strconv.Atoi(t[1])
			if err != nil || v < 0 {
				return NodeInfo{}, fmt.Errorf("%w: pow %q", ErrNotNodeInfo, t[1])
			}
			info.PoW = v
		case "pow_first_contact":
			v, err := strconv.Atoi(t[1])
			if err != nil || v < 0 {
				return NodeInfo{}, fmt.Errorf("%w: pow_first_contact %q", ErrNotNodeInfo, t[1])
			}
			info.PoWFirstContact, info.PoWFirstContactTagged = v, true
		case "mostro_version":
			info.MostroVersion = t[1]
		}
	}
	if info.PoWFirstContact < info.PoW {
		info.PoWFirstContact = info.PoW
	}
	return info, nil
}

// DisputeEvent is what a kind-38386 revision says.
type DisputeEvent struct {
	// DisputeID is the d tag.
	DisputeID string
	// Status is the s tag (unknown values kept).
	Status DisputeStatus
	// Initiator is "buyer", "seller" or "unknown" ("unknown" also when the
	// tag is missing, as on older nodes).
	Initiator string
	// InitiatorTagged reports whether the initiator tag was present.
	InitiatorTagged bool
	// OpenedAt is the created_at (or published_at) tag: when the dispute
	// opened. 0 when absent. Never use it for ordering revisions.
	OpenedAt int64
	// Expiration is the NIP-40 expiration tag, 0 when absent.
	Expiration int64
	// Event is the revision itself.
	Event nostr.Event
}

// ErrNotDisputeEvent is returned for an event that is not a usable dispute
// revision.
var ErrNotDisputeEvent = errors.New("not a mostro dispute event")

// ParseDisputeEvent reads a kind-38386 revision by tag name (never by
// position). It does not verify the signature or the author.
func ParseDisputeEvent(evt nostr.Event) (DisputeEvent, error) {
	if evt.Kind != KindDispute {
		return DisputeEvent{}, fmt.Errorf("%w: kind %d", ErrNotDisputeEvent, evt.Kind)
	}
	d := DisputeEvent{Initiator: "unknown", Event: evt}
	for _, t := range evt.Tags {
		if len(t) < 2 {
			continue
		}
		switch t[0] {
		case "d":
			if d.DisputeID == "" {
				d.DisputeID = t[1]
			}
		case "s":
			d.Status = DisputeStatus(t[1])
		case "initiator":
			d.Initiator, d.InitiatorTagged = t[1], true
		case "created_at", "published_at":
			if v, err := strconv.ParseInt(t[1], 10, 64); err == nil {
				d.OpenedAt = v
			}
		case "expiration":
			if v, err := strconv.ParseInt(t[1], 10, 64); err == nil {
				d.Expiration = v
			}
		}
	}
	if d.DisputeID == "" {
		return DisputeEvent{}, fmt.Errorf("%w: no d tag", ErrNotDisputeEvent)
	}
	if d.Status == "" {
		return DisputeEvent{}, fmt.Errorf("%w: no s tag", ErrNotDisputeEvent)
	}
	return d, nil
}

// Newer reports whether revision a supersedes b for the same dispute: a
// higher created_at wins, then the lower id (NIP-33 tie-break).
func Newer(a, b nostr.Event) bool {
	if a.CreatedAt != b.CreatedAt {
		return a.CreatedAt > b.CreatedAt
	}
	return a.ID < b.ID
}

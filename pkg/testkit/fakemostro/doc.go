// Package fakemostro is a fake Mostro node (mostrod 0.18.5) for tests,
// faithful where Serbero can observe it: the events it publishes, the
// requests it accepts, the ones it silently drops, and its replies.
//
// # Starting it
//
//	r := relay.Start(t)                                   // pkg/testkit/relay
//	m := fakemostro.Start(t, fakemostro.Config{ProtocolVersion: 2, PoW: 4, PoWFirstContact: 8}, r.URL())
//	buyer, seller := fakeparty.New(t, r.URL()), fakeparty.New(t, r.URL())
//	d := m.OpenDispute(fakemostro.DisputeSpec{BuyerPubkey: buyer.Pubkey(), SellerPubkey: seller.Pubkey()})
//	m.AddSolver(serberoPubkey, fakemostro.PermRead)       // or send admin-add-solver with m.Keys()
//
// Start publishes the kind-38385 info event (d = node pubkey; tags
// mostro_version, pow, pow_first_contact = max(pow, first contact),
// protocol_version "1"/"2", LND tags, z=info; Reconfigure changes them and
// republishes). OpenDispute records an order in dispute and publishes the
// kind-38386 "initiated" revision. Revisions carry mostrod's tags in its
// order — d, expiration, s, initiator, created_at (published_at with
// Config.PublishedAtTag), y=["y","mostro"(,name)], z=dispute — empty
// content, and a created_at strictly after the previous revision of the
// same d. Knobs: DisputeSpec.OmitInitiatorTag (old node),
// UnknownInitiatorTag, Behavior.SameSecondRevisions, ReplayRevision (a
// stale revision republished after a newer one), SetStatus (auto-close:
// settled, seller-refunded, cooperatively-canceled, or any status),
// TakeOver (another solver took it: in-progress revision, no DM).
//
// # Intake (mostrod's accept_event)
//
// The node subscribes to kinds 1059 and 14 with #p = its key and applies,
// in order: PoW ≥ pow on the outer event; kind = its transport (1059 for
// v1, 14 for v2; both with Config.AcceptBoth); outer id and signature;
// on v2 a 60 s replay guard and, for senders outside its active set
// (parties of open orders, solvers of disputes in progress),
// PoW ≥ pow_first_contact; unwrap (v1 rumor must be kind 1; a tuple
// signature, when present, must verify against the canonical JSON; v2
// identity proofs too); rumor/event created_at no older than 10 s;
// identity ≠ trade key needs a signature; MessageKind::verify (e.g.
// admin-take-dispute without id). Every failure is a silent drop, counted
// by reason: Drops, WaitDrop (reasons are the Drop* constants). Requests
// lists what passed.
//
// # Actions
//
//   - admin-add-solver: only from the node key (else no reply); payload
//     "npub1…[:read|:write|:read-write]"; a bad suffix gets cant-do
//     invalid_parameters, a hex key no reply; the reply has no id.
//   - admin-take-dispute (id = dispute id), mostrod's matrix: the node key
//     takes initiated or in-progress; any solver takes initiated; the
//     holder may re-take; a read-write solver may take over from a read
//     solver; otherwise cant-do invalid_pubkey; an unknown id gets no reply.
//     On success: admin-took-dispute with SolverDisputeInfo to the solver,
//     then admin-took-dispute with the solver as Peer to buyer and seller,
//     then the in-progress revision.
//   - admin-settle / admin-cancel (id = order id): only the assigned
//     solver (else dispute_taken_by_admin / is_not_your_dispute), only
//     read-write (else not_authorized). Serbero never sends these; tests
//     craft the JSON by hand to prove a read solver is refused.
//
// Replies follow mostrod's send_dm: v1 a gift wrap whose rumor (kind 1)
// and seal are the node key, tuple [msg, null]; v2 a kind-14 event with
// an expiration tag, tuple [msg, null, null]. The request_id is echoed.
//
// # Misbehaviour
//
// SetBehavior / UpdateBehavior script replies: SilentTakes (no reply:
// time-out path), TakeCantDo, ReplyFrom (another key), MismatchPayloadID
// (message id ≠ payload id), OmitBuyerPubkey / OmitSellerPubkey,
// SameBuyerSeller, LegacyRumorKind14 (the reference simulator's NIP-17
// rumors), ReplyDelay, DuplicateReplies. SendMessage / SendMessageFrom
// send any message (stale cant-do or admin-took-dispute about another
// dispute, before Serbero subscribes: TookDisputeMessage builds one).
//
// Use Config.Now to skew the node's clock. Waits (WaitFor, WaitDrop,
// WaitRequest, AssertNoRequest) are condition-based with deadlines.
package fakemostro

// Package fakeparty is a trade party (buyer or seller) for tests: a trade
// key that reads Mostro's messages to it, learns the solver, and chats with
// the solver over the dispute chat in both wire forms, plus the adversarial
// moves Serbero's relay gateway must withstand.
//
// # Typical use
//
//	r := relay.Start(t)
//	m := fakemostro.Start(t, fakemostro.Config{}, r.URL())
//	buyer, seller := fakeparty.New(t, r.URL()), fakeparty.New(t, r.URL())
//	d := m.OpenDispute(fakemostro.DisputeSpec{BuyerPubkey: buyer.Pubkey(), SellerPubkey: seller.Pubkey()})
//	// … Serbero takes d …
//	buyer.LearnSolver(m.Pubkey(), 5*time.Second) // from Mostro's admin-took-dispute Peer notice
//	buyer.Say("I sent the money")                 // v2 line (kind 14 by K_sign)
//	buyer.Send(chat.FormV1, "legacy client line") // legacy gift-wrap line
//	lines := buyer.WaitLines(1, 5*time.Second)    // Serbero's lines to the buyer
//	buyer.AssertNoMoreLines(200 * time.Millisecond)
//
// SetSolver skips Mostro when a test already knows the solver's key.
//
// Reading: after the solver is known the party subscribes to v2 lines by
// author pub(K_sign) and legacy lines by p = pub(shared), validates each
// with chat.Validator (only the solver may sign inner events; its own
// echoes are ignored), keeps each inner event once (Lines, Texts;
// DuplicateLines counts the rest) and records the rest in Rejected with
// the validator's reason.
//
// # Adversarial helpers (each publishes one event and returns it)
//
//   - Forge(form, forger, text): right address, inner event signed by
//     another key (the forged line).
//   - SendAsOutsider(text): kind 14 at pub(K_conv) authored by a key that
//     is not K_sign.
//   - Rewrap(form, inner): an existing inner event in a fresh outer event
//     (the re-wrapped replay; in v2 an old inner fails the 60 s rule, in
//     v1 only durable inner-id dedup catches it).
//   - SendFutureDated(form, text, ahead): created_at in the future.
//   - SendWithPTags(form, text, pTags…): wrong, missing or extra p tags.
//   - SendOversized(form): a line above 64 KiB.
//   - Flood(form, n, prefix): n lines at once.
//   - Publish(evt): anything else; for events a relay refuses (bad
//     signatures) use the test relay's Inject.
//
// Options.Now sets the party's clock (for skew tests).
package fakeparty

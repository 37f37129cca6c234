// Package relay is an in-process Nostr relay for tests: khatru with an
// in-memory event store, listening on 127.0.0.1 on a random port, with fault
// injection.
//
// It behaves like a real relay (NIP-01 REQ/EVENT/CLOSE/EOSE/OK/CLOSED;
// filters on ids, authors, kinds, tags such as #p #d #z, since, until and
// limit; NIP-33 replacement for kinds 30000-39999 and replaceable kinds;
// regular kinds such as signed kind 14 and gift wraps are stored) and can
// misbehave on demand:
//
//   - Faults.DropIncoming: answer OK true but neither store nor deliver (a
//     lossy relay); Faults.RejectIncoming: answer OK false with a reason;
//   - Faults.DropLive / DropStored: do not deliver matching events to
//     subscribers, live or from the store;
//   - Faults.Delay: deliver matching live events late;
//   - Faults.Duplicate: deliver matching events twice;
//   - Faults.StallIncoming: answer OK late (publishers time out);
//   - Faults.RefuseREQ: answer a REQ with CLOSED;
//   - Faults.StallStored: send a REQ's stored events only up to a matching
//     one and then neither the rest nor EOSE, so that a DisconnectAll cuts
//     the connection partway through the stored answer;
//   - DisconnectAll: cut every client connection (the relay keeps running);
//   - Options.MaxStoredEvents: answer at most that many stored events per
//     REQ filter, newest first, like real relays' caps (a client pages
//     backwards with until for the rest); Options.MaxMessageLength: drop
//     the connection of a client whose message is larger;
//   - Stop / Start / Restart: take the relay down and bring it back on the
//     SAME port, keeping the stored events or (Wipe) losing them.
//
// Inject puts any event, even an invalid or forged one, into the store and
// delivers it to matching subscribers: a relay may deliver anything, and
// clients must verify what they receive.
//
// Live deliveries are made by this package (khatru's own broadcast is
// disabled, and racy), so every delivery passes the fault rules. The
// package's own client side (Publish) uses pkg/mostro/relayconn, as every
// fake of the kit does. Waits use conditions
// with deadlines (WaitSubscribed, WaitConnections), never sleeps.
package relay

package dm_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

var (
	fuzzSerbero = keys.MustParse("548f68890c49fa42f104c60352395e60ff030b0b407e955f1eed1400d6c0347a")
	fuzzSolver  = keys.MustParse("f258e73f07386d37133718b6127f873dd7c391b8f43b331ff8254034a13d2943")
)

// FuzzDM: any body wraps and unwraps to itself (from Serbero, for the
// solver only); any delivered event unwraps to a DM or fails with a typed
// error (giftwrap.ErrNotForMe, giftwrap.ErrMalformed, dm.ErrNotDM).
func FuzzDM(f *testing.F) {
	now := func() time.Time { return time.Unix(1755800000, 0) }
	w, err := dm.Wrap(fuzzSerbero, fuzzSolver.PublicKey(), "seed", dm.Options{Now: now})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Dispute 5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b (initiated by the buyer) needs a solver.", []byte(w.String()))
	f.Add("", []byte(`{"kind":1059,"pubkey":"`+fuzzSolver.PublicKey()+`","content":"AgAA","tags":[["p","x"]]}`))
	f.Add("émoji 🎉 \u2028 <b>", []byte(`{}`))
	f.Fuzz(func(t *testing.T, body string, event []byte) {
		w, err := dm.Wrap(fuzzSerbero, fuzzSolver.PublicKey(), body, dm.Options{Now: now})
		if !utf8.ValidString(body) {
			// JSON cannot carry it: the solver would refuse the rumor.
			if !errors.Is(err, giftwrap.ErrInvalidRumor) {
				t.Fatalf("wrapped a body that is not UTF-8: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("wrap: %v", err)
		}
		m, err := dm.Unwrap(w, fuzzSolver)
		if err != nil {
			t.Fatalf("unwrap what we wrapped: %v", err)
		}
		if m.From != fuzzSerbero.PublicKey() || m.WrapID != w.ID {
			t.Fatalf("from %s wrap %s", m.From, m.WrapID)
		}
		if m.Body != body {
			t.Fatalf("body changed: %q → %q", body, m.Body)
		}
		if _, err := dm.Unwrap(w, fuzzSerbero); !errors.Is(err, giftwrap.ErrNotForMe) {
			t.Fatalf("a DM opened for the wrong key: %v", err)
		}

		var ev nostr.Event
		if json.Unmarshal(event, &ev) != nil {
			return
		}
		m, err = dm.Unwrap(ev, fuzzSolver)
		if err != nil {
			if !errors.Is(err, giftwrap.ErrNotForMe) && !errors.Is(err, giftwrap.ErrMalformed) && !errors.Is(err, dm.ErrNotDM) {
				t.Fatalf("untyped rejection: %v", err)
			}
			return
		}
		if m.Rumor.Kind != 14 || m.From != m.Rumor.PubKey {
			t.Fatalf("accepted a non-DM: %+v", m.Rumor)
		}
	})
}

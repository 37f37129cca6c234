package engine

import (
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
)

// eventKind is the kind of a streamed dispute event, as relaygw reports it.
func eventKind(ev *relaygwv1.DisputeEvent) int { return int(ev.GetKind()) }

// eventSig is the signature of a streamed dispute event (hex).
func eventSig(ev *relaygwv1.DisputeEvent) string { return ev.GetSig() }

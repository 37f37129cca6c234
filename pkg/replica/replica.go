// Package replica names this process among the replicas of a service: the
// identity a replica writes when it claims work (a handoff's claimed_by, a
// lease holder, a probe claimer), so a claim can be traced to a pod and
// told apart from every other claimer.
//
// An ID is "<hostname>-<pid>-<random>": the hostname (a pod name in
// Kubernetes) says where, the pid tells two processes of one host apart,
// and 8 random hex digits make it unique per call, so a restarted process
// (same host, maybe the same pid in a container) never inherits the claims
// of its previous life, and two components of one process can hold
// distinct identities. An ID is at most 64+1+10+1+8 bytes: hostnames are
// cut to 64 bytes.
package replica

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"

	"github.com/serbero/serbero/pkg/textcut"
)

// maxHost caps the hostname part (RFC 1123 labels are shorter; this only
// bounds what a misconfigured host could put in a column).
const maxHost = 64

// ID returns a new replica identity for component, unique per call. The
// hostname comes from os.Hostname; when it is unknown the component's name
// stands in for it.
func ID(component string) string {
	host, _ := os.Hostname()
	return Format(host, os.Getpid(), component)
}

// Format builds an identity from its parts (ID with the process facts
// given, for tests): host (or component when host is empty), pid and a
// fresh random suffix.
func Format(host string, pid int, component string) string {
	host = strings.TrimSpace(host)
	if host == "" {
		host = component
	}
	if host == "" {
		host = "serbero"
	}
	host = textcut.Bytes(host, maxHost) // never half a character
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return host + "-" + strconv.Itoa(pid) + "-" + hex.EncodeToString(b)
}

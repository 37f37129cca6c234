package cli

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

// defaultPartiesFile is where `devtool open-dispute` keeps the trade keys
// of the parties it made up, for `devtool party` (relative to the
// repository root, where make dev runs).
const defaultPartiesFile = ".data/dev-parties.json"

// devParties is the state file: the dev Mostro's disputes and their
// parties' trade keys. It holds secret keys (of throw-away dev parties):
// it is written 0600 and never logged.
type devParties struct {
	// MostroPubkey is the dev node that opened the disputes.
	MostroPubkey string `json:"mostro_pubkey"`
	// Disputes by dispute id.
	Disputes map[string]devDispute `json:"disputes"`
}

// devDispute is one dispute opened on the dev Mostro.
type devDispute struct {
	OrderID   string    `json:"order_id"`
	Initiator string    `json:"initiator"`
	Outcome   string    `json:"outcome,omitempty"`
	OpenedAt  time.Time `json:"opened_at"`
	Buyer     devParty  `json:"buyer"`
	Seller    devParty  `json:"seller"`
}

// devParty is a party's trade key.
type devParty struct {
	Pubkey    string `json:"pubkey"`
	SecretKey string `json:"secret_key"`
}

// party returns the role's entry ("buyer" or "seller").
func (d devDispute) party(role string) (devParty, error) {
	switch role {
	case "buyer":
		return d.Buyer, nil
	case "seller":
		return d.Seller, nil
	}
	return devParty{}, &usageError{msg: fmt.Sprintf("--role must be buyer or seller, not %q", role)}
}

// keys parses the party's secret key and checks it against its pubkey.
func (p devParty) keys() (keys.Keys, error) {
	k, err := keys.Parse(p.SecretKey)
	if err != nil {
		return keys.Keys{}, errors.New("the state file holds an invalid party secret key")
	}
	if k.PublicKey() != p.Pubkey {
		return keys.Keys{}, errors.New("the state file's party secret key does not match its pubkey")
	}
	return k, nil
}

// loadParties reads the state file; a missing file is an empty state.
func loadParties(path string) (devParties, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return devParties{Disputes: map[string]devDispute{}}, nil
	}
	if err != nil {
		return devParties{}, fmt.Errorf("read %s: %w", path, err)
	}
	var s devParties
	if err := json.Unmarshal(b, &s); err != nil {
		return devParties{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if s.Disputes == nil {
		s.Disputes = map[string]devDispute{}
	}
	return s, nil
}

// saveParties writes the state file atomically, 0600.
func saveParties(path string, s devParties) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// dispute finds a dispute by id; an empty id is the newest one.
func (s devParties) dispute(id, path string) (string, devDispute, error) {
	if id != "" {
		d, ok := s.Disputes[id]
		if !ok {
			return "", devDispute{}, fmt.Errorf("dispute %s is not in %s (open it with serbero devtool open-dispute)", id, path)
		}
		return id, d, nil
	}
	if len(s.Disputes) == 0 {
		return "", devDispute{}, fmt.Errorf("no disputes in %s yet: open one with serbero devtool open-dispute", path)
	}
	ids := make([]string, 0, len(s.Disputes))
	for k := range s.Disputes {
		ids = append(ids, k)
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(s.Disputes[a].OpenedAt.Compare(s.Disputes[b].OpenedAt), cmp.Compare(a, b))
	})
	newest := ids[len(ids)-1]
	return newest, s.Disputes[newest], nil
}

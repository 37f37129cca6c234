package config

import (
	"fmt"
	"strings"
)

// ParsePermission accepts read, write and read-write, case-insensitively
// (read-write means write: that solver may settle and cancel in Mostro).
func ParsePermission(s string) (Permission, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "read":
		return PermissionRead, nil
	case "write", "read-write":
		return PermissionWrite, nil
	default:
		return "", fmt.Errorf("invalid permission %q (want read, write or read-write)", s)
	}
}

// UnmarshalText implements encoding.TextUnmarshaler for the TOML decoder.
func (p *Permission) UnmarshalText(b []byte) error {
	v, err := ParsePermission(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

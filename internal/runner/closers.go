package runner

import (
	"errors"
	"fmt"
	"net"
	"sync"
)

// closers is the process's one closer stack: every resource is pushed when
// it is created and closed in reverse order (LIFO) once, at the end of Run
// or when Complete fails half-way.
type closers struct {
	mu    sync.Mutex
	items []namedCloser
	done  bool
}

type namedCloser struct {
	name string
	fn   func() error
}

// push adds a resource to close.
func (c *closers) push(name string, fn func() error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.items = append(c.items, namedCloser{name: name, fn: fn})
}

// closeAll closes everything pushed, newest first, once; it returns every
// failure joined. Closing an already closed listener is not a failure.
func (c *closers) closeAll() error {
	c.mu.Lock()
	items := c.items
	c.items, c.done = nil, true
	c.mu.Unlock()
	var errs []error
	for i := len(items) - 1; i >= 0; i-- {
		if err := items[i].fn(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close %s: %w", items[i].name, err))
		}
	}
	return errors.Join(errs...)
}

// names lists what is open, oldest first (for tests and logs).
func (c *closers) names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.items))
	for _, it := range c.items {
		out = append(out, it.name)
	}
	return out
}

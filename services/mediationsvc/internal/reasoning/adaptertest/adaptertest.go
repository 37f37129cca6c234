// Package adaptertest is the HTTP test server the adapter tests share: it
// records every request (method, path, headers, body bytes) and answers
// with scripted responses.
package adaptertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Response is one scripted answer.
type Response struct {
	// Status is the HTTP status (0: 200).
	Status int
	// Body is the response body.
	Body string
	// Header is extra response headers.
	Header map[string]string
}

// Request is one received request.
type Request struct {
	// Method and Path of the request.
	Method, Path string
	// Header is its headers.
	Header http.Header
	// Body is its raw body.
	Body []byte
}

// Server is a recording test server.
type Server struct {
	*httptest.Server
	mu        sync.Mutex
	responses []Response
	requests  []Request
}

// New starts a server answering with responses in order (the last
// repeats).
func New(t *testing.T, responses ...Response) *Server {
	t.Helper()
	s := &Server{responses: responses}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	resp := Response{Status: 500, Body: "no scripted response"}
	if len(s.responses) > 0 {
		resp = s.responses[min(n, len(s.responses)-1)]
	}
	s.mu.Unlock()
	for k, v := range resp.Header {
		w.Header().Set(k, v)
	}
	if resp.Status == 0 {
		resp.Status = 200
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}

// Requests returns the requests so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

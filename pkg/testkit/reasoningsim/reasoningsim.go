// Package reasoningsim is a scripted simulator of an OpenAI-compatible
// chat completions endpoint, for tests and offline development (`serbero
// devtool reasoning-sim`, `make dev`). It is not a model: it answers what
// its script says, per dispute (the "dispute_id: …" line of the prompt's
// session metadata) and per operation (classify, summarize, health), and
// records every request so tests can assert on them.
//
// A script in JSON (see Script):
//
//	{
//	  "default":  {"classify": [{"kind": "ask_clarification"}], "summarize": [{"kind": "summary"}]},
//	  "disputes": {
//	    "0b7e…": {"classify": [{"status": 429, "retry_after": "1"}, {"kind": "summarize", "confidence": 0.9}]},
//	    "5c1d…": {"classify": [{"kind": "fraud"}]},
//	    "9f00…": {"classify": [{"kind": "malformed"}]},
//	    "77aa…": {"classify": [{"kind": "ask_clarification", "delay": "20s"}]}
//	  }
//	}
//
// Each operation's replies are used in order, each for Times calls (1 by
// default); the last one then answers every further call.
package reasoningsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Operations the simulator tells apart.
const (
	OpClassify  = "classify"
	OpSummarize = "summarize"
	OpHealth    = "health"
)

// Reply kinds (presets; Content overrides the message content).
const (
	// KindAskClarification: classify → ask_clarification with a question
	// per party.
	KindAskClarification = "ask_clarification"
	// KindSummarize: classify → coordination_failure_resolvable, summarize.
	KindSummarize = "summarize"
	// KindEscalate: classify → not_suitable_for_mediation, escalate.
	KindEscalate = "escalate"
	// KindFraud: classify → suspected_fraud with the fraud_risk flag.
	KindFraud = "fraud"
	// KindMalformed: content that is not the requested format.
	KindMalformed = "malformed"
	// KindSummary: summarize → a summary with next step and rationale.
	KindSummary = "summary"
	// KindPong: the health answer.
	KindPong = "pong"
)

// Duration is a time.Duration written as "250ms", "2s" in JSON.
type Duration time.Duration

// UnmarshalJSON reads a duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return errors.New("delay: want a duration string or seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Reply is one scripted answer.
type Reply struct {
	// Kind is a preset (the Kind* constants); empty means the operation's
	// default (ask_clarification, summary, pong).
	Kind string `json:"kind,omitempty"`
	// Content, when set, is the message content verbatim.
	Content string `json:"content,omitempty"`
	// Classification, Confidence, Flags, BuyerText, SellerText and
	// Rationale adjust the classify presets.
	Classification string   `json:"classification,omitempty"`
	Confidence     *float64 `json:"confidence,omitempty"`
	Flags          []string `json:"flags,omitempty"`
	BuyerText      string   `json:"buyer_text,omitempty"`
	SellerText     string   `json:"seller_text,omitempty"`
	Rationale      string   `json:"rationale,omitempty"`
	// SummaryText and NextStep adjust the summary preset.
	SummaryText string `json:"summary_text,omitempty"`
	NextStep    string `json:"next_step,omitempty"`
	// Status, when not 0 or 200, answers with that HTTP status and an
	// OpenAI-style error body instead.
	Status int `json:"status,omitempty"`
	// RetryAfter is sent as the Retry-After header.
	RetryAfter string `json:"retry_after,omitempty"`
	// Delay holds the answer back (the request's cancellation ends it).
	Delay Duration `json:"delay,omitempty"`
	// Times is how many calls this reply answers (0 means 1).
	Times int `json:"times,omitempty"`
}

// Replies are the scripted answers of one dispute, per operation.
type Replies struct {
	// Classify answers classification calls.
	Classify []Reply `json:"classify,omitempty"`
	// Summarize answers summary calls.
	Summarize []Reply `json:"summarize,omitempty"`
	// Health answers health checks ("ping"; they carry no dispute, so
	// only the default's apply).
	Health []Reply `json:"health,omitempty"`
}

func (r Replies) of(op string) []Reply {
	switch op {
	case OpClassify:
		return r.Classify
	case OpSummarize:
		return r.Summarize
	}
	return r.Health
}

// Script is the whole script.
type Script struct {
	// Default answers disputes without an entry of their own, and the
	// operations an entry leaves empty.
	Default Replies `json:"default"`
	// Disputes answer by dispute id.
	Disputes map[string]Replies `json:"disputes,omitempty"`
}

// LoadScript reads a JSON script file.
func LoadScript(path string) (Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Script{}, fmt.Errorf("read script: %w", err)
	}
	return ParseScript(b)
}

// ParseScript parses a JSON script; unknown fields are errors.
func ParseScript(b []byte) (Script, error) {
	var s Script
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Script{}, fmt.Errorf("parse script: %w", err)
	}
	return s, nil
}

// Request is one request the simulator received.
type Request struct {
	// Method and Path of the request.
	Method, Path string
	// Header is the request's headers.
	Header http.Header
	// Body is the raw body.
	Body []byte
	// Op is classify, summarize or health ("" when the body was not
	// understood).
	Op string
	// DisputeID is the dispute of the prompt's session metadata.
	DisputeID string
	// Model is the requested model.
	Model string
}

// Sim is the simulator. Its Handler serves POST /chat/completions (and
// /v1/chat/completions).
type Sim struct {
	mu       sync.Mutex
	script   Script
	cursors  map[string]int // dispute/op → calls answered
	requests []Request
	apiKey   string
	seq      int
}

// New returns a simulator following script.
func New(script Script) *Sim { return &Sim{script: script, cursors: map[string]int{}} }

// RequireKey makes the simulator answer 401 unless the bearer key is key.
func (s *Sim) RequireKey(key string) { s.mu.Lock(); s.apiKey = key; s.mu.Unlock() }

// SetScript replaces the script and restarts every sequence.
func (s *Sim) SetScript(script Script) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script, s.cursors = script, map[string]int{}
}

// ScriptDispute sets the replies of one dispute.
func (s *Sim) ScriptDispute(disputeID string, r Replies) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.script.Disputes == nil {
		s.script.Disputes = map[string]Replies{}
	}
	s.script.Disputes[disputeID] = r
	for _, op := range []string{OpClassify, OpSummarize, OpHealth} {
		delete(s.cursors, disputeID+"/"+op)
	}
}

// Requests returns a copy of the requests received so far.
func (s *Sim) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// RequestsFor returns the requests of one dispute and operation ("" for
// any operation).
func (s *Sim) RequestsFor(disputeID, op string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.DisputeID == disputeID && (op == "" || r.Op == op) {
			out = append(out, r)
		}
	}
	return out
}

var disputeLine = regexp.MustCompile(`(?m)^dispute_id: (\S+)\s*$`)

type chatRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	ResponseFormat *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

// Handler serves the chat completions endpoint.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /chat/completions", s.serve)
	mux.HandleFunc("POST /v1/chat/completions", s.serve)
	return mux
}

func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	rec := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err == nil {
		rec.Model = req.Model
		rec.Op, rec.DisputeID = classifyRequest(req)
	}
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	key := s.apiKey
	s.mu.Unlock()

	if key != "" && r.Header.Get("Authorization") != "Bearer "+key {
		writeError(w, http.StatusUnauthorized, "", "invalid_api_key", "Incorrect API key provided.")
		return
	}
	if rec.Op == "" {
		writeError(w, http.StatusBadRequest, "", "invalid_request_error", "the simulator could not read this request")
		return
	}
	reply := s.next(rec.DisputeID, rec.Op)
	if reply.Delay > 0 {
		t := time.NewTimer(time.Duration(reply.Delay))
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if reply.Status != 0 && reply.Status != http.StatusOK {
		writeError(w, reply.Status, reply.RetryAfter, "simulated_error", "simulated HTTP "+strconv.Itoa(reply.Status))
		return
	}
	content := reply.Content
	if content == "" {
		var err error
		if content, err = render(rec.Op, reply); err != nil {
			writeError(w, http.StatusInternalServerError, "", "simulator_error", "the simulator could not encode its reply: "+err.Error())
			return
		}
	}
	if reply.RetryAfter != "" {
		w.Header().Set("Retry-After", reply.RetryAfter)
	}
	s.mu.Lock()
	s.seq++
	id := s.seq
	s.mu.Unlock()
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(m.Content)/4 + 1
	}
	completion := len(content)/4 + 1
	resp := completionResponse{
		ID:      fmt.Sprintf("simcmpl-%d", id),
		Object:  "chat.completion",
		Created: time.Now().Unix(),
		Model:   req.Model,
		Choices: []completionChoice{{
			Index:        0,
			Message:      completionMessage{Role: "assistant", Content: content},
			FinishReason: "stop",
		}},
		Usage: completionUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion},
	}
	writeJSON(w, http.StatusOK, resp)
}

// classifyRequest tells the operation and dispute of a request.
func classifyRequest(req chatRequest) (op, dispute string) {
	if len(req.Messages) == 0 {
		return "", ""
	}
	user := req.Messages[len(req.Messages)-1].Content
	if m := disputeLine.FindStringSubmatch(user); m != nil {
		dispute = m[1]
	}
	switch {
	case strings.TrimSpace(user) == "ping":
		return OpHealth, ""
	case req.ResponseFormat != nil || strings.Contains(user, `"classification"`):
		return OpClassify, dispute
	case strings.Contains(user, "SUGGESTED_NEXT_STEP:"):
		return OpSummarize, dispute
	}
	return "", dispute
}

// next picks the reply for the call and advances the dispute's sequence.
func (s *Sim) next(dispute, op string) Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	replies := s.script.Default.of(op)
	if d, ok := s.script.Disputes[dispute]; ok && len(d.of(op)) > 0 {
		replies = d.of(op)
	}
	if len(replies) == 0 {
		return Reply{}
	}
	k := dispute + "/" + op
	n := s.cursors[k]
	s.cursors[k] = n + 1
	for _, r := range replies {
		times := max(r.Times, 1)
		if n < times {
			return r
		}
		n -= times
	}
	return replies[len(replies)-1]
}

func writeError(w http.ResponseWriter, status int, retryAfter, code, msg string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, status, errorResponse{Error: errorBody{Message: msg, Type: code, Code: code}})
}

// writeJSON sends v with status. A value that does not encode is a 500 in
// plain text; a failed write means the client went away, with no one left
// to tell.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "the simulator could not encode its answer: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// The wire shapes of the answers: typed, so encoding them cannot fail.
type (
	completionResponse struct {
		ID      string             `json:"id"`
		Object  string             `json:"object"`
		Created int64              `json:"created"`
		Model   string             `json:"model"`
		Choices []completionChoice `json:"choices"`
		Usage   completionUsage    `json:"usage"`
	}
	completionChoice struct {
		Index        int               `json:"index"`
		Message      completionMessage `json:"message"`
		FinishReason string            `json:"finish_reason"`
	}
	completionMessage struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	completionUsage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	errorResponse struct {
		Error errorBody `json:"error"`
	}
	errorBody struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	}
	// classification is the classify answer; fields in the order the
	// earlier map encoding produced (alphabetical).
	classification struct {
		BuyerClarification    string   `json:"buyer_clarification,omitempty"`
		Classification        string   `json:"classification"`
		Confidence            float64  `json:"confidence"`
		Flags                 []string `json:"flags"`
		Rationale             string   `json:"rationale"`
		SellerClarification   string   `json:"seller_clarification,omitempty"`
		SuggestedAction       string   `json:"suggested_action"`
		SuggestedActionDetail string   `json:"suggested_action_detail,omitempty"`
	}
)

// Default texts of the presets.
const (
	DefaultBuyerText = "Hello, I'm Serbero, an automated mediation assistant helping the human solver assigned to this dispute. " +
		"Could you tell me whether you sent the fiat payment, when, and what proof of it you can share?"
	DefaultSellerText = "Hello, I'm Serbero, an automated mediation assistant helping the human solver assigned to this dispute. " +
		"Could you tell me whether the fiat payment arrived in your account, and what your account shows for it?"
	DefaultSummary = "Buyer confirmed sending the fiat payment by bank transfer; the seller confirmed it arrived late because of a bank delay. " +
		"Both parties agree on the amount and are waiting for the solver."
	DefaultNextStep = "Solver should review both confirmations and complete the trade in Mostro as they see fit."
)

// render is the message content of reply r to operation op.
func render(op string, r Reply) (string, error) {
	switch op {
	case OpHealth:
		return "pong", nil
	case OpSummarize:
		if r.Kind == KindMalformed {
			return "RATIONALE: markers in the wrong order\nSUGGESTED_NEXT_STEP: none", nil
		}
		summary, step := r.SummaryText, r.NextStep
		if summary == "" {
			summary = DefaultSummary
		}
		if step == "" {
			step = DefaultNextStep
		}
		rationale := r.Rationale
		if rationale == "" {
			rationale = "simulated: both parties' accounts agree"
		}
		return summary + "\nSUGGESTED_NEXT_STEP: " + step + "\nRATIONALE: " + rationale, nil
	}
	if r.Kind == KindMalformed {
		return "I think this dispute is probably fine, but I am not going to answer in JSON.", nil
	}
	out := classification{Flags: []string{}}
	switch r.Kind {
	case KindSummarize:
		out.Classification, out.SuggestedAction, out.Confidence = "coordination_failure_resolvable", "summarize", 0.9
	case KindEscalate:
		out.Classification, out.SuggestedAction, out.Confidence = "not_suitable_for_mediation", "escalate", 0.9
		out.SuggestedActionDetail = "simulated escalation"
	case KindFraud:
		out.Classification, out.SuggestedAction, out.Confidence = "suspected_fraud", "escalate", 0.95
		out.Flags = []string{"fraud_risk"}
	default:
		buyer, seller := r.BuyerText, r.SellerText
		if buyer == "" {
			buyer = DefaultBuyerText
		}
		if seller == "" {
			seller = DefaultSellerText
		}
		out.Classification, out.SuggestedAction, out.Confidence = "unclear", "ask_clarification", 0.6
		out.BuyerClarification, out.SellerClarification = buyer, seller
	}
	if r.Classification != "" {
		out.Classification = r.Classification
	}
	if r.Confidence != nil {
		out.Confidence = *r.Confidence
	}
	if r.Flags != nil {
		out.Flags = r.Flags
	}
	out.Rationale = r.Rationale
	if r.Rationale == "" {
		out.Rationale = "simulated " + r.Kind + " rationale"
	}
	b, err := json.Marshal(out)
	if err != nil {
		// Only a confidence of NaN or ±Inf (set from Go) gets here.
		return "", fmt.Errorf("encode classification: %w", err)
	}
	return string(b), nil
}

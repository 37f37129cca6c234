package policy

import (
	"regexp"
	"strings"

	"github.com/serbero/serbero/pkg/textcut"
)

// ViolationKind says what an outbound text did wrong.
type ViolationKind string

// The violation kinds.
const (
	// ViolationAuthority: the text moves funds, settles, cancels, closes,
	// or claims a decision.
	ViolationAuthority ViolationKind = "authority_phrase"
	// ViolationPlaceholder: the text still holds a template placeholder.
	ViolationPlaceholder ViolationKind = "template_placeholder"
)

// Violation is one finding in an outbound text. Match is the matched
// phrase or placeholder (a fixed phrase from our list, or a short
// bracketed token), safe to log.
type Violation struct {
	// Kind is the finding's kind.
	Kind ViolationKind
	// Match is what matched.
	Match string
}

// SummaryAuthorityPhrases are rejected in summaries and next steps
// (case-insensitive, whitespace-insensitive substrings).
var SummaryAuthorityPhrases = []string{
	"admin-settle", "admin_settle", "admin-cancel", "admin_cancel",
	"release funds", "release the funds", "settle the trade", "settle funds",
	"cancel trade", "cancel the trade", "force close", "force-close",
	"move funds", "transfer funds", "disburse funds", "close the dispute",
}

// QuestionAuthorityPhrases are rejected, on top of the summary phrases, in
// texts sent to a party: telling a party to release, send or refund, or
// claiming that something was decided. Plain questions about what
// happened ("did you send the fiat payment?") do not match.
var QuestionAuthorityPhrases = []string{
	"you must release", "you should release", "you need to release", "please release",
	"release the sats", "release the bitcoin", "release the btc", "release the escrow",
	"you must send", "you should send", "you need to send", "please send the sats", "please send the bitcoin",
	"send the sats", "send the bitcoin", "send the btc",
	"you must refund", "you should refund", "you need to refund", "please refund", "refund the buyer", "refund the seller",
	"you must transfer", "you should transfer", "please transfer", "transfer the funds", "move the funds",
	"i have decided", "we have decided", "serbero has decided", "i've decided", "we've decided",
	"my decision is", "our decision is", "the decision is final", "i rule ", "ruled in favor", "ruled in favour",
	"you win the dispute", "you lose the dispute", "you have won the dispute", "you have lost the dispute",
	"dispute is now closed", "dispute is now resolved", "this dispute is closed", "this dispute is resolved",
	"this dispute has been closed", "this dispute has been resolved",
	"admin-take", "admin_take", "adminsettle", "admincancel",
}

// placeholderRe matches template placeholders: an upper-case token in
// square brackets ([SPECIFIC_QUESTION], [PARTY NAME]), double braces
// ({{question}}) or angle brackets (<SPECIFIC_QUESTION>).
var placeholderRe = regexp.MustCompile(`\[[A-Z][A-Z0-9_]*(?:[ -][A-Z0-9_]+)*\]|\{\{[^{}]{0,80}\}\}|<[A-Z][A-Z0-9_]{2,}>`)

// normalize lowercases, folds typographic apostrophes and collapses runs
// of white space, so "Release  the\nFunds" matches "release the funds".
func normalize(s string) string {
	s = strings.NewReplacer("\u2019", "'", "\u2018", "'", "\u00a0", " ").Replace(strings.ToLower(s))
	return strings.Join(strings.Fields(s), " ")
}

func phraseViolations(phrases []string, texts ...string) []Violation {
	var out []Violation
	for _, t := range texts {
		n := normalize(t)
		for _, p := range phrases {
			if strings.Contains(n, p) {
				out = append(out, Violation{Kind: ViolationAuthority, Match: p})
			}
		}
	}
	return out
}

func summaryAuthorityViolations(texts ...string) []Violation {
	return phraseViolations(SummaryAuthorityPhrases, texts...)
}

func authorityViolations(texts ...string) []Violation {
	out := phraseViolations(SummaryAuthorityPhrases, texts...)
	return append(out, phraseViolations(QuestionAuthorityPhrases, texts...)...)
}

func placeholderViolations(texts ...string) []Violation {
	var out []Violation
	for _, t := range texts {
		for _, m := range placeholderRe.FindAllString(t, 8) {
			m = textcut.Bytes(m, 64) // never half a character
			out = append(out, Violation{Kind: ViolationPlaceholder, Match: m})
		}
	}
	return out
}

// CheckOutbound checks any text about to go to a party: authority phrases
// (summary and question lists) and template placeholders. The engine runs
// it on every party message it sends, whatever drafted it.
func CheckOutbound(text string) []Violation {
	return append(authorityViolations(text), placeholderViolations(text)...)
}

// HasPlaceholder reports whether text holds a template placeholder.
func HasPlaceholder(text string) bool { return placeholderRe.MatchString(text) }

func blank(s string) bool { return strings.TrimSpace(s) == "" }

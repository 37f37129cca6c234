package reasoning_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
)

func TestRationaleID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", reasoning.RationaleID("abc"))
	require.Equal(t, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", reasoning.RationaleID(""))
	require.Equal(t, reasoning.RationaleID("abc"), reasoning.NewRationale("abc").ID())
	require.Equal(t, reasoning.RationaleID(""), reasoning.Rationale{}.ID())
}

func TestRationaleRedacted(t *testing.T) {
	t.Parallel()
	const secret = "the buyer is lying about the payment"
	r := reasoning.NewRationale(secret)
	resp := reasoning.ClassificationResponse{Classification: reasoning.LabelUnclear, Rationale: r}
	type hidden struct {
		resp reasoning.ClassificationResponse
	}

	outs := []string{
		r.String(), r.GoString(),
		fmt.Sprint(r), fmt.Sprintf("%v|%+v|%#v|%s|%q|%x|%d", r, r, r, r, r, r, r),
		fmt.Sprintf("%v %+v %#v", resp, resp, resp),
		fmt.Sprintf("%v %+v", hidden{resp}, &hidden{resp}),
	}
	j, err := json.Marshal(resp)
	require.NoError(t, err)
	outs = append(outs, string(j))
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("x", "rationale", r, "resp", resp)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "rationale", r, "resp", resp)
	outs = append(outs, logs.String())
	for _, o := range outs {
		require.NotContains(t, o, secret)
		require.NotContains(t, o, "lying")
	}
	require.Equal(t, "<36 bytes redacted>", r.String())
	require.Contains(t, logs.String(), "<36 bytes redacted>")
	require.Equal(t, secret, r.Reveal())
}

func TestCategoryOf(t *testing.T) {
	t.Parallel()
	require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(fmt.Errorf("wrapped: %w", reasoning.Unreachable("x"))))
	require.Equal(t, reasoning.CategoryTimeout, reasoning.CategoryOf(reasoning.Timeout(nil)))
	require.Equal(t, reasoning.CategoryUnknown, reasoning.CategoryOf(fmt.Errorf("plain")))
	nyi := reasoning.NotImplemented("ppqai")
	require.Equal(t, reasoning.CategoryUnreachable, nyi.Category)
	require.Contains(t, nyi.Error(), "reasoning provider 'ppqai' is declared at the Phase 3 boundary but not yet implemented; currently shipped providers: openai, openai-compatible, anthropic. Landing ppqai adapter support is tracked as future work beyond Phase 3.")
}

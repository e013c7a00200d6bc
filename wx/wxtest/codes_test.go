package wxtest

import (
	"testing"
	"time"
)

// TestCodesPruned checks that a long-running development server drops the codes it no
// longer needs, and only those.
func TestCodesPruned(t *testing.T) {
	s := New("wx4f4bc4dec97d474b", "secret")
	for range 1000 {
		s.NewCode("o-dev")
		s.NewPhoneCode("o-dev")
	}
	s.Advance(CodeLifetime - time.Second)
	fresh := s.NewCode("o-dev")
	s.mu.Lock()
	s.codes.byCode[fresh].used = true
	s.mu.Unlock()
	if got := len(s.codes.byCode); got != 1001 {
		t.Errorf("before expiry: want 1001 codes kept; got %d", got)
	}

	s.Advance(time.Second)
	s.NewCode("o-dev")
	s.NewPhoneCode("o-dev")
	if got := len(s.codes.byCode); got != 2 {
		t.Errorf("want the expired login codes dropped, the used one kept (2 left); got %d", got)
	}
	if got := len(s.phoneCodes.byCode); got != 1 {
		t.Errorf("want the expired phone codes dropped (1 left); got %d", got)
	}
	if _, ok := s.codes.get(fresh); !ok {
		t.Errorf("want a used code kept until it expires, to answer 40163")
	}

	s.Advance(CodeLifetime)
	s.NewCode("o-dev")
	if got := len(s.codes.byCode); got != 1 {
		t.Errorf("want every expired code dropped, used or not (1 left); got %d", got)
	}
}

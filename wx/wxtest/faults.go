package wxtest

import (
	"fmt"
	"net/http"
	"time"
)

// Fault is a failure to inject into an endpoint's answers (see Fail). Latency applies
// first; then the first of Hangup, Body, Status and ErrCode that is set decides the
// answer. A Fault with only Latency delays the normal answer.
type Fault struct {
	// Latency delays the answer; the wait ends early if the client goes away.
	Latency time.Duration
	// Hangup closes the connection without an answer.
	Hangup bool
	// Body is sent as it is (malformed JSON, an HTML error page, ...), with Status or 200.
	Body string
	// Status is the HTTP status; without Body, a small HTML page goes with it, as a
	// gateway would send.
	Status int
	// ErrCode is answered as WeChat does, with HTTP 200: {"errcode":N,"errmsg":"..."}.
	ErrCode int
	// ErrMsg is the errmsg for ErrCode. Default: WeChat's message for the code.
	ErrMsg string
	// Times is how many requests the Fault applies to: 0 or 1 means the next one only;
	// -1 means every request until ClearFaults.
	Times int
}

type fault struct {
	Fault
	left int // requests still to fail; -1 for ever
}

// Fail makes the endpoint (one of the endpoint constants) answer its next requests with f.
// Faults queue: each applies to its Times requests, then the next one starts. It panics
// for an unknown endpoint.
func (s *Server) Fail(endpoint string, f Fault) {
	switch endpoint {
	case Code2Session, StableToken, Token, CheckSession, PhoneNumber:
	default:
		panic(fmt.Sprintf("wxtest: Fail: unknown endpoint %q", endpoint))
	}
	left := f.Times
	if left == 0 {
		left = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = append(s.faults[endpoint], &fault{Fault: f, left: left})
}

// ClearFaults removes every pending Fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// takeFault returns the fault for this request of endpoint, if any; the caller holds mu.
func (s *Server) takeFault(endpoint string) *Fault {
	q := s.faults[endpoint]
	if len(q) == 0 {
		return nil
	}
	f := q[0]
	if f.left > 0 {
		f.left--
		if f.left == 0 {
			s.faults[endpoint] = q[1:]
		}
	}
	return &f.Fault
}

// apply answers the request as f says, and reports whether it did; false means the
// normal answer should follow.
func (f *Fault) apply(w http.ResponseWriter, r *http.Request) bool {
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	switch {
	case f.Hangup:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // closes the connection where hijacking is not possible
	case f.Body != "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(orDefault(f.Status, http.StatusOK))
		w.Write([]byte(f.Body))
	case f.Status != 0:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(f.Status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", f.Status, http.StatusText(f.Status))
	case f.ErrCode != 0:
		writeError(w, f.ErrCode, f.ErrMsg)
	default:
		return false
	}
	return true
}

// orDefault returns v, or def if v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

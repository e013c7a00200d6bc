package wsauth

// Handles returns how many live handles the server holds, for tests that check that
// closed sockets release theirs.
func (s *Server) Handles() int {
	s.regMu.Lock()
	r := s.reg
	s.regMu.Unlock()
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

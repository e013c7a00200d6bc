package wsauth

// Handles returns how many live handles the process holds, for tests that check that
// closed sockets release theirs.
func Handles() int {
	registriesMu.Lock()
	defer registriesMu.Unlock()
	n := 0
	for _, r := range registries {
		r.mu.Lock()
		n += r.n
		r.mu.Unlock()
	}
	return n
}

package api

import "github.com/go-chi/chi/v5"

// Routes exposes the router for the test that holds it against the contract.
func (s *Server) Routes() chi.Routes { return s.mux }

// SetAdminListMax sets the admin list's bound for a test and restores it after.
func SetAdminListMax(t interface{ Cleanup(func()) }, n int) {
	old := adminListMax
	adminListMax = n
	t.Cleanup(func() { adminListMax = old })
}

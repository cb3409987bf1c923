package api

import "github.com/go-chi/chi/v5"

// Routes exposes the router for the test that holds it against the contract.
func (s *Server) Routes() chi.Routes { return s.mux }

package bolt

// DisableCommitGate makes s use bbolt's DB.Batch alone, so benchmarks can
// show what the gate buys.
func DisableCommitGate(s *Store) { s.noGate = true }

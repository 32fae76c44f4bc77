package processor

// ResumeDecision exposes decide's answer to the external tests.
type ResumeDecision struct {
	At, CatchUpFrom int64
	Restore         bool
}

// Decide exposes decide to the external tests.
func Decide(stored bool, next, committed, logStart int64) ResumeDecision {
	d := decide(stored, next, committed, logStart)
	return ResumeDecision{At: d.at, CatchUpFrom: d.catchUpFrom, Restore: d.restore}
}

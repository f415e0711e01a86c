package provider

// DecoyChecks counts the argon2 decoy checks run for refused directory
// sign-ins (for the tests of package provider_test).
func DecoyChecks(p *Provider) int64 { return p.passwords.decoys.Load() }

// ResetLimits forgets every attempt the limiters counted (tests that make
// many failures on purpose).
func ResetLimits(p *Provider) { p.limiter = newLimiter(p.now) }

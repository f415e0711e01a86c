package provider

// DecoyChecks counts the argon2 decoy checks run for refused directory
// sign-ins (for the tests of package provider_test).
func DecoyChecks(p *Provider) int64 { return p.passwords.decoys.Load() }

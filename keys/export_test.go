package keys

// PrivateMaterial exposes, for tests only, the raw private key bytes of every
// ring member (PKCS #8 DER and the scalar), so tests can look for them in
// what the store wrote.
func (r *Ring) PrivateMaterial() map[string][]byte {
	out := map[string][]byte{}
	for _, k := range r.snap.Load().keys {
		for name, b := range privateBytes(k.signer.priv) {
			out[k.rec.ID+" "+name] = b
		}
	}
	return out
}

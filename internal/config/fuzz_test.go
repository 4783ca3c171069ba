package config

import "testing"

// FuzzParse: arbitrary config documents never panic, and whatever parses
// can be validated without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:8200\nstorage: memory:\naudit:\n  path: /tmp/a.log\n"))
	f.Add([]byte("tls: {cert_file: a, key_file: b}\naws: {region: eu-west-1, call_timeout: 3s}\n"))
	f.Add([]byte("limits: {max_body_bytes: -1}\nshutdown_timeout: 99999999999\n"))
	f.Add([]byte("{\"listen\": [1,2]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if err := Parse(b, &c); err != nil {
			return
		}
		c.SetDefaults()
		_ = c.Validate()
	})
}

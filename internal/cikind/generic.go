package cikind

import "time"

// Generic is the kind of any other OIDC issuer: keyferry knows no claim
// beyond sub, so roles may name any claim, and a token without iat is
// accepted when it expires within the maximum token age.
const Generic = "generic"

var generic = Kind{
	name:        Generic,
	maxTokenAge: time.Hour,
	iatOptional: true,
	shape: func(c map[string]any) []string {
		if stringClaim(c, "sub") == "" {
			return []string{"sub"}
		}
		return nil
	},

	claimsDoc: "any",
	bindings: []Binding{
		{Key: "sub", Rule: literalPrefix, Doc: "it does not start with a wildcard"},
	},
	bindingHint: "not * or a value starting with a wildcard",
	sessionName: "kf-{sub}-{lease_id}",

	dev: func(iss string, o DevOptions) map[string]any {
		def(&o.Project, "dev-subject")
		def(&o.JTI, randomUUID())
		defTimes(&o.TTL, &o.Now, time.Hour)
		iat := o.Now.Unix()
		return map[string]any{
			"iss": iss, "sub": o.Project, "aud": audienceClaim(o.Audience),
			"iat": iat, "nbf": iat, "exp": iat + int64(o.TTL/time.Second), "jti": o.JTI,
		}
	},
}

package identity_test

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/keyferry/keyferry/internal/devissuer"
	"github.com/keyferry/keyferry/internal/dur"
	"github.com/keyferry/keyferry/internal/identity"
)

func TestValidateIssuer(t *testing.T) {
	rsaPub := &loadKey(t, "rsa1.pem").PublicKey
	rsaDER := pkixDER(t, rsaPub)
	smallDER := pkixDER(t, &loadKey(t, "rsa1024.pem").PublicKey)
	ecDER := pkixDER(t, &newECKey(t).PublicKey)
	dev, err := devissuer.NewFromKey("https://gitlab.example.com", loadKey(t, "rsa1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	idp := newIdP(t, "rsa1.pem")

	valid := func() identity.Issuer {
		return identity.Issuer{Name: "gitlab", Kind: identity.KindGitLab, URL: "https://gitlab.example.com",
			Audiences: []string{testAudience}}
	}
	tests := []struct {
		name string
		mod  func(*identity.Issuer)
		want []string // substrings of the error; none means valid
	}{
		{name: "minimal", mod: func(*identity.Issuer) {}},
		{name: "every option", mod: func(is *identity.Issuer) {
			is.Name, is.Kind = "gl.prod_1-a", identity.KindGeneric
			is.JWKSURL = "https://gitlab.example.com/oauth/discovery/keys"
			is.CACert = idp.caPEM
			is.Algorithms = []string{"RS256", "PS512", "ES384", "EdDSA"}
			is.Leeway, is.MaxTokenAge = dur.Duration(time.Minute), dur.Duration(2*time.Hour)
			is.JWKSRefreshCooldown, is.ReplayMaxUses = dur.Duration(time.Minute), 3
		}},
		{name: "http on localhost (dev mode)", mod: func(is *identity.Issuer) { is.URL = "http://localhost:8080" }},
		{name: "http on a loopback IP (dev mode)", mod: func(is *identity.Issuer) { is.URL = "http://127.0.0.1:8080/dev" }},
		{name: "http on IPv6 loopback (dev mode)", mod: func(is *identity.Issuer) { is.URL = "http://[::1]:8080" }},
		{name: "static PEM key", mod: func(is *identity.Issuer) { is.PublicKeys = []string{pemBlock("PUBLIC KEY", rsaDER)} }},
		{name: "static PKCS1 key", mod: func(is *identity.Issuer) {
			is.PublicKeys = []string{pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(rsaPub))}
		}},
		{name: "static JWKS", mod: func(is *identity.Issuer) { is.PublicKeys = []string{string(dev.JWKS())} }},

		{name: "empty name", mod: func(is *identity.Issuer) { is.Name = "" }, want: []string{"name:"}},
		{name: "upper-case name", mod: func(is *identity.Issuer) { is.Name = "GitLab" }, want: []string{"name:"}},
		{name: "name too long", mod: func(is *identity.Issuer) { is.Name = strings.Repeat("a", 64) }, want: []string{"name:"}},
		{name: "unknown kind", mod: func(is *identity.Issuer) { is.Kind = "bitbucket" }, want: []string{"kind:"}},
		{name: "no url", mod: func(is *identity.Issuer) { is.URL = "" }, want: []string{"url: is required"}},
		{name: "http url off loopback", mod: func(is *identity.Issuer) { is.URL = "http://gitlab.example.com" },
			want: []string{"url:", "https"}},
		{name: "http url on a look-alike host", mod: func(is *identity.Issuer) { is.URL = "http://localhost.evil.example" },
			want: []string{"url:", "https"}},
		{name: "relative url", mod: func(is *identity.Issuer) { is.URL = "gitlab.example.com" }, want: []string{"url:", "absolute"}},
		{name: "url with query", mod: func(is *identity.Issuer) { is.URL = "https://gitlab.example.com/?a=b" }, want: []string{"url:", "query"}},
		{name: "url with fragment", mod: func(is *identity.Issuer) { is.URL = "https://gitlab.example.com/#x" }, want: []string{"url:", "fragment"}},
		{name: "url with credentials", mod: func(is *identity.Issuer) { is.URL = "https://u:p@gitlab.example.com" }, want: []string{"url:", "credentials"}},
		{name: "ftp url", mod: func(is *identity.Issuer) { is.URL = "ftp://gitlab.example.com" }, want: []string{"url:", "https"}},
		{name: "http jwks_url", mod: func(is *identity.Issuer) { is.JWKSURL = "http://keys.example.com/jwks" }, want: []string{"jwks_url:", "https"}},
		{name: "jwks_url and public_keys", mod: func(is *identity.Issuer) {
			is.JWKSURL = "https://gitlab.example.com/jwks"
			is.PublicKeys = []string{string(dev.JWKS())}
		}, want: []string{"jwks_url:", "one key source"}},
		{name: "unparseable public key", mod: func(is *identity.Issuer) { is.PublicKeys = []string{"not a key"} },
			want: []string{"public_keys[0]:"}},
		{name: "private key PEM as public key", mod: func(is *identity.Issuer) {
			is.PublicKeys = []string{pemBlock("PRIVATE KEY", []byte{1})}
		}, want: []string{"public_keys[0]:", "unsupported PEM block"}},
		{name: "RSA key below 2048 bits", mod: func(is *identity.Issuer) { is.PublicKeys = []string{pemBlock("PUBLIC KEY", smallDER)} },
			want: []string{"public_keys[0]:", "too small"}},
		{name: "broken JWKS", mod: func(is *identity.Issuer) { is.PublicKeys = []string{`{"keys": 7}`} },
			want: []string{"public_keys[0]:", "parse jwks"}},
		{name: "JWKS with only an HMAC key", mod: func(is *identity.Issuer) {
			is.PublicKeys = []string{`{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}`}
		}, want: []string{"public_keys[0]:"}},
		{name: "EC key but only RS256 allowed", mod: func(is *identity.Issuer) { is.PublicKeys = []string{pemBlock("PUBLIC KEY", ecDER)} },
			want: []string{"public_keys:", "no key can verify"}},
		{name: "alg none", mod: func(is *identity.Issuer) { is.Algorithms = []string{"none"} },
			want: []string{"algorithms[0]:", "never accepted", "unsigned"}},
		{name: "alg HS256", mod: func(is *identity.Issuer) { is.Algorithms = []string{"RS256", "HS256"} },
			want: []string{"algorithms[1]:", "never accepted", "HMAC"}},
		{name: "unknown alg", mod: func(is *identity.Issuer) { is.Algorithms = []string{"RS1"} },
			want: []string{"algorithms[0]:", "not supported"}},
		{name: "no audiences", mod: func(is *identity.Issuer) { is.Audiences = nil }, want: []string{"audiences:", "required"}},
		{name: "empty audience", mod: func(is *identity.Issuer) { is.Audiences = []string{testAudience, " "} },
			want: []string{"audiences[1]:", "empty"}},
		{name: "leeway above 60s", mod: func(is *identity.Issuer) { is.Leeway = dur.Duration(61 * time.Second) }, want: []string{"leeway:"}},
		{name: "negative leeway", mod: func(is *identity.Issuer) { is.Leeway = dur.Duration(-time.Second) }, want: []string{"leeway:"}},
		{name: "negative max_token_age", mod: func(is *identity.Issuer) { is.MaxTokenAge = dur.Duration(-time.Second) },
			want: []string{"max_token_age:"}},
		{name: "negative cooldown", mod: func(is *identity.Issuer) { is.JWKSRefreshCooldown = dur.Duration(-time.Second) },
			want: []string{"jwks_refresh_cooldown:"}},
		{name: "negative replay_max_uses", mod: func(is *identity.Issuer) { is.ReplayMaxUses = -1 }, want: []string{"replay_max_uses:"}},
		{name: "ca_cert not PEM", mod: func(is *identity.Issuer) { is.CACert = "not a cert" }, want: []string{"ca_cert:"}},
		{name: "ca_cert with a key block", mod: func(is *identity.Issuer) { is.CACert = pemBlock("PUBLIC KEY", rsaDER) },
			want: []string{"ca_cert:", "want CERTIFICATE"}},
		{name: "several problems reported at once", mod: func(is *identity.Issuer) {
			is.Name, is.Kind, is.URL = "Bad Name", "svn", "http://gitlab.example.com"
			is.Algorithms, is.Audiences, is.Leeway = []string{"HS256", "none"}, nil, dur.Duration(2*time.Minute)
			is.ReplayMaxUses, is.CACert = -2, "junk"
		}, want: []string{"name:", "kind:", "url:", "algorithms[0]:", "algorithms[1]:", "audiences:", "leeway:",
			"replay_max_uses:", "ca_cert:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := valid()
			tt.mod(&is)
			err := identity.ValidateIssuer(is)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
			if got, want := strings.Count(err.Error(), "\n")+1, len(errLines(tt.want)); got < want {
				t.Errorf("got %d error lines, want at least %d (one per problem)", got, want)
			}
		})
	}
}

// errLines returns the wanted substrings that name a field (end in ":"),
// i.e. the number of distinct problems expected.
func errLines(want []string) []string {
	var out []string
	for _, w := range want {
		if strings.HasSuffix(w, ":") {
			out = append(out, w)
		}
	}
	return out
}

func TestDefaultMaxTokenAge(t *testing.T) {
	tests := []struct {
		kind identity.Kind
		want time.Duration
	}{
		{identity.KindGitLab, 24 * time.Hour},
		{identity.KindGitHub, time.Hour},
		{identity.KindKubernetes, 24 * time.Hour},
		{identity.KindGeneric, time.Hour},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			if got := identity.DefaultMaxTokenAge(tt.kind); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Config configures a Verifier. Every field is optional.
type Config struct {
	// HTTPClient is used for discovery and JWKS fetches (default: a
	// client with a 10 s timeout). Issuers with a CACert get a copy whose
	// transport also trusts that CA.
	HTTPClient *http.Client
	// Now returns the current time (default time.Now).
	Now func() time.Time
	// Logger receives key-fetch events (default: discard).
	Logger *slog.Logger
	// OnJWKSFetch, if set, is called after every key fetch attempt with the
	// issuer's name and the fetch error (nil on success); a metrics hook.
	OnJWKSFetch func(issuer string, err error)
	// ReplayCacheSize bounds the number of (iss, jti) pairs tracked for
	// issuers with ReplayMaxUses > 0 (default DefaultReplayCacheSize).
	ReplayCacheSize int
}

// Verifier verifies tokens against a set of trusted issuers. It is safe
// for concurrent use; SetIssuers may be called while tokens are verified.
type Verifier struct {
	client  *http.Client
	now     func() time.Time
	logger  *slog.Logger
	onFetch func(string, error)
	replay  *replayCache

	mu  sync.Mutex // serialises SetIssuers
	set atomic.Pointer[issuerSet]
}

// issuerSet is an immutable snapshot of the configured issuers.
type issuerSet struct {
	byURL map[string]*issuerState
	list  []Issuer
}

// issuerState is one issuer's configuration, prepared for the hot path.
type issuerState struct {
	cfg       Issuer // with defaults applied
	algs      algSet
	joseAlgs  []jose.SignatureAlgorithm
	audiences map[string]struct{}
	leeway    float64 // seconds
	maxAge    float64 // seconds
	cooldown  time.Duration
	keys      *keySource
}

// NewVerifier returns a Verifier with no issuers; call SetIssuers.
func NewVerifier(cfg Config) *Verifier {
	v := &Verifier{
		client:  cfg.HTTPClient,
		now:     cfg.Now,
		logger:  cfg.Logger,
		onFetch: cfg.OnJWKSFetch,
		replay:  newReplayCache(cfg.ReplayCacheSize),
	}
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.logger == nil {
		v.logger = slog.New(slog.DiscardHandler)
	}
	v.set.Store(&issuerSet{byURL: map[string]*issuerState{}})
	return v
}

// SetIssuers validates every issuer, then atomically replaces the trusted
// set. On error nothing changes. Issuers whose key source (name, url,
// jwks_url, public_keys, ca_cert) is unchanged keep their cached keys. No
// network I/O happens here: keys are fetched on first use.
func (v *Verifier) SetIssuers(issuers []Issuer) error {
	var errs []error
	names := make(map[string]int, len(issuers))
	urls := make(map[string]int, len(issuers))
	for i, is := range issuers {
		if err := ValidateIssuer(is); err != nil {
			errs = append(errs, fmt.Errorf("issuers[%d]: %w", i, err))
		}
		if j, dup := names[is.Name]; dup {
			errs = append(errs, fmt.Errorf("issuers[%d]: name: %q is already used by issuers[%d]", i, is.Name, j))
		} else {
			names[is.Name] = i
		}
		if j, dup := urls[is.URL]; dup {
			errs = append(errs, fmt.Errorf("issuers[%d]: url: %q is already used by issuers[%d]", i, is.URL, j))
		} else {
			urls[is.URL] = i
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	reuse := map[string]*keySource{}
	for _, st := range v.set.Load().byURL {
		reuse[st.keys.id] = st.keys
	}
	next := &issuerSet{byURL: make(map[string]*issuerState, len(issuers)), list: make([]Issuer, 0, len(issuers))}
	for i, is := range issuers {
		cfg := withDefaults(is)
		st := &issuerState{
			cfg:       cfg,
			audiences: make(map[string]struct{}, len(cfg.Audiences)),
			leeway:    cfg.Leeway.D().Seconds(),
			maxAge:    cfg.MaxTokenAge.D().Seconds(),
			cooldown:  cfg.JWKSRefreshCooldown.D(),
		}
		for _, a := range cfg.Algorithms {
			st.algs |= algBit(a)
			st.joseAlgs = append(st.joseAlgs, jose.SignatureAlgorithm(a))
		}
		for _, a := range cfg.Audiences {
			st.audiences[a] = struct{}{}
		}
		if ks, ok := reuse[sourceID(cfg)]; ok {
			st.keys = ks
		} else {
			ks, err := newKeySource(cfg, v.client, v.now, v.logger, v.onFetch)
			if err != nil { // validated above, so this is unexpected
				return fmt.Errorf("issuers[%d]: %w", i, err)
			}
			st.keys = ks
		}
		next.byURL[cfg.URL] = st
		next.list = append(next.list, cfg)
	}
	v.set.Store(next)
	return nil
}

// Issuers returns the configured issuers, with defaults applied.
func (v *Verifier) Issuers() []Issuer {
	list := v.set.Load().list
	out := make([]Issuer, len(list))
	for i, is := range list {
		out[i] = withDefaults(is) // copies the slices
	}
	return out
}

// jwtHeader is the part of a JOSE header the verifier inspects. The
// RawMessage fields only record presence: those headers are refused.
type jwtHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	JKU  json.RawMessage `json:"jku"`
	X5U  json.RawMessage `json:"x5u"`
	JWK  json.RawMessage `json:"jwk"`
	X5C  json.RawMessage `json:"x5c"`
	Crit json.RawMessage `json:"crit"`
	B64  json.RawMessage `json:"b64"`
}

// b64 decodes JWT segments; it is read-only. Strict decoding rejects
// non-canonical encodings, so a token has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

func reject(code, msg string, cause error) *Error {
	return &Error{Code: code, Message: msg, Err: cause}
}

// Verify checks raw against the configured issuers and returns the
// verified identity. Every error is an *Error; its Message is safe to
// show to the caller, its Err is a cause for logs only. The checks run in
// the order of shared/reference/identity-tokens-and-trust-policies.md §6:
// shape, issuer, header, key, signature, time claims, audience, CI shape,
// replay.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Identity, error) {
	id, e := v.verify(ctx, raw)
	if e != nil {
		return nil, e
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, raw string) (*Identity, *Error) {
	// 1. Shape.
	raw = strings.TrimSpace(raw) // tokens read from files often end in a newline
	if raw == "" {
		return nil, reject(CodeTokenMissing, "no token was provided", nil)
	}
	if len(raw) > MaxTokenLen {
		return nil, reject(CodeTokenTooLarge, fmt.Sprintf("the token is longer than %d bytes", MaxTokenLen), nil)
	}
	switch n := strings.Count(raw, "."); n {
	case 2:
	case 4:
		return nil, reject(CodeTokenEncrypted, "encrypted tokens (JWE) are not accepted: send the signed JWT", nil)
	default:
		return nil, reject(CodeTokenMalformed, "the token is not a JWT: want three dot-separated parts",
			fmt.Errorf("%d parts", n+1))
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, reject(CodeTokenMalformed, "the token is not a JWT: it contains characters outside base64url",
				fmt.Errorf("byte %d", i))
		}
	}
	hdrPart, rest, _ := strings.Cut(raw, ".")
	payloadPart, sigPart, _ := strings.Cut(rest, ".")
	// go-jose decodes the signature leniently; checking it strictly here
	// keeps every accepted token to a single spelling.
	var sigBuf [1024]byte
	if b64.DecodedLen(len(sigPart)) > len(sigBuf) {
		return nil, reject(CodeTokenMalformed, "the token signature is too long", nil)
	}
	if _, err := b64.Decode(sigBuf[:], []byte(sigPart)); err != nil {
		return nil, reject(CodeTokenMalformed, "the token signature is not valid base64url", err)
	}
	hdrJSON, err := b64.DecodeString(hdrPart)
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token header is not valid base64url", err)
	}
	var hdr jwtHeader
	if err := json.Unmarshal(hdrJSON, &hdr); err != nil {
		return nil, reject(CodeTokenMalformed, "the token header is not a valid JSON object", err)
	}
	payload, err := b64.DecodeString(payloadPart)
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token payload is not valid base64url", err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token payload is not a valid JSON object", err)
	}

	// 2. Issuer, by exact iss.
	iss, _ := claims["iss"].(string)
	if iss == "" {
		return nil, reject(CodeUnknownIssuer, "the token has no iss claim", nil)
	}
	st := v.set.Load().byURL[iss]
	if st == nil {
		return nil, reject(CodeUnknownIssuer, "the token's issuer is not trusted", fmt.Errorf("iss %.200q", iss))
	}

	// 3. Header.
	switch {
	case strings.EqualFold(hdr.Alg, "none"):
		return nil, reject(CodeUnsupportedAlgorithm, "unsigned tokens (alg none) are never accepted", nil)
	case len(hdr.Alg) >= 2 && strings.EqualFold(hdr.Alg[:2], "HS"):
		return nil, reject(CodeUnsupportedAlgorithm,
			"HMAC-signed tokens (HS256/HS384/HS512) are never accepted: the issuer signs with a private key", nil)
	}
	alg := algBit(hdr.Alg)
	if alg&st.algs == 0 {
		return nil, reject(CodeUnsupportedAlgorithm, "the token's signature algorithm is not allowed for this issuer",
			fmt.Errorf("alg %.40q, allowed %v", hdr.Alg, st.cfg.Algorithms))
	}
	for _, h := range [...]struct {
		name string
		val  json.RawMessage
	}{{"jku", hdr.JKU}, {"x5u", hdr.X5U}, {"jwk", hdr.JWK}, {"x5c", hdr.X5C}} {
		if h.val != nil {
			return nil, reject(CodeForbiddenHeader,
				"the token has a "+h.name+" header: keys named or embedded in a token are never used", nil)
		}
	}
	if hdr.Crit != nil || hdr.B64 != nil {
		return nil, reject(CodeForbiddenHeader, "the token has a crit or b64 header: no JWS extensions are supported", nil)
	}
	tok, err := jwt.ParseSigned(raw, st.joseAlgs)
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token is not a valid signed JWT", err)
	}
	if len(tok.Headers) != 1 || tok.Headers[0].Algorithm != hdr.Alg || tok.Headers[0].KeyID != hdr.Kid {
		// Our header decoding and go-jose's disagree (e.g. duplicate or
		// case-variant keys): refuse rather than guess which one wins.
		return nil, reject(CodeTokenMalformed, "the token header is ambiguous", nil)
	}

	// 4. Keys.
	now := v.now()
	ks := st.keys.current(now, st.cooldown)
	if ks == nil {
		ks, err = st.keys.initial(ctx, now, st.cooldown)
		if err != nil {
			return nil, reject(CodeIssuerUnavailable, "the issuer's signing keys cannot be retrieved; try again later", err)
		}
	}
	var buf [maxCandidates]*verificationKey
	cands := ks.candidates(buf[:0], hdr.Kid, alg)
	if len(cands) == 0 {
		fresh, err := st.keys.refetchForUnknownKey(ctx, now, st.cooldown)
		if fresh != nil {
			cands = fresh.candidates(buf[:0], hdr.Kid, alg)
		}
		if len(cands) == 0 {
			cause := fmt.Errorf("no key for kid %.100q and alg %s", hdr.Kid, hdr.Alg)
			if err != nil {
				cause = fmt.Errorf("%w (refetch failed: %w)", cause, err)
			}
			return nil, reject(CodeUnknownKey, "the token was signed with a key the issuer does not publish", cause)
		}
	}

	// 5. Signature.
	var sigErr error
	verified := false
	for _, k := range cands {
		if sigErr = tok.Claims(k.pub); sigErr == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, reject(CodeSignatureInvalid, "the token's signature is invalid", sigErr)
	}

	// 6. Time claims.
	nowS := timeSeconds(now)
	exp, ok, err := timeClaim(claims, "exp")
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token's exp claim is not a valid time", err)
	}
	if !ok {
		return nil, reject(CodeTokenMalformed, "the token has no exp claim", nil)
	}
	if nowS > exp+st.leeway {
		return nil, reject(CodeTokenExpired, "the token has expired", nil)
	}
	nbf, ok, err := timeClaim(claims, "nbf")
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token's nbf claim is not a valid time", err)
	}
	if ok && nbf > nowS+st.leeway {
		return nil, reject(CodeTokenNotYetValid, "the token is not valid yet (nbf is in the future)", nil)
	}
	iat, hasIAT, err := timeClaim(claims, "iat")
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token's iat claim is not a valid time", err)
	}
	switch {
	case hasIAT && iat > nowS+st.leeway:
		return nil, reject(CodeTokenIssuedInFuture, "the token's iat is in the future; check the issuer's clock", nil)
	case hasIAT && nowS-iat > st.maxAge:
		return nil, reject(CodeTokenTooOld, fmt.Sprintf("the token was issued more than %s ago", st.cfg.MaxTokenAge), nil)
	case !hasIAT && st.cfg.Kind != KindGeneric:
		return nil, reject(CodeTokenMalformed, "the token has no iat claim", nil)
	case !hasIAT && exp-nowS > st.maxAge:
		// Without iat the age is unknown: bound the remaining lifetime instead.
		return nil, reject(CodeTokenTooOld, fmt.Sprintf("the token has no iat and is valid for more than %s", st.cfg.MaxTokenAge), nil)
	}
	if st.cfg.Kind == KindKubernetes {
		k8s, _ := claims["kubernetes.io"].(map[string]any)
		if wa, ok := k8s["warnafter"]; ok {
			warnAfter, _, err := numericDate(wa, "kubernetes.io.warnafter")
			if err != nil {
				return nil, reject(CodeTokenMalformed, "the token's kubernetes.io.warnafter is not a valid time", err)
			}
			if nowS > warnAfter+st.leeway {
				return nil, reject(CodeTokenExpired,
					"the token is a legacy extended service-account token past its warnafter time; use a fresh projected token", nil)
			}
		}
	}

	// 7. Audience.
	auds, err := audiences(claims)
	if err != nil {
		return nil, reject(CodeTokenMalformed, "the token's aud claim is not a string or an array of strings", err)
	}
	if len(auds) == 0 {
		return nil, reject(CodeAudienceMismatch, "the token has no aud claim", nil)
	}
	if len(auds) > 1 && !st.cfg.AllowMultipleAudiences {
		return nil, reject(CodeMultipleAudiences,
			"the token has several audiences, so other services would accept it too; request a token for this service only", nil)
	}
	matched := false
	for _, a := range auds {
		if _, ok := st.audiences[a]; ok {
			matched = true
			break
		}
	}
	if !matched {
		return nil, reject(CodeAudienceMismatch, "the token's audience is not accepted by this broker", nil)
	}

	// 8. CI shape.
	if problem := ciShapeProblem(st.cfg.Kind, claims); problem != "" {
		return nil, reject(CodeNotACIToken, problem, nil)
	}

	// 9. Replay.
	jti := stringClaim(claims, "jti")
	if st.cfg.ReplayMaxUses > 0 {
		if jti == "" {
			return nil, reject(CodeTokenMalformed, fmt.Sprintf("jti required by issuer %s", st.cfg.Name), nil)
		}
		until := secondsToTime(exp).Add(st.cfg.Leeway.D())
		switch v.replay.use(iss, jti, until, now, st.cfg.ReplayMaxUses) {
		case replayExceeded:
			return nil, reject(CodeTokenReplayed,
				fmt.Sprintf("the token has already been used %d time(s); request a new one", st.cfg.ReplayMaxUses), nil)
		case replayFull:
			return nil, reject(CodeReplayCacheFull, "too many tokens are being tracked for replay; try again later", nil)
		}
	}

	// 10. Identity.
	id := &Identity{
		Issuer:    st.cfg.Name,
		IssuerURL: iss,
		Kind:      st.cfg.Kind,
		Subject:   stringClaim(claims, "sub"),
		Audience:  auds,
		JTI:       jti,
		ExpiresAt: secondsToTime(exp),
		Claims:    claims,
	}
	if hasIAT {
		id.IssuedAt = secondsToTime(iat)
	}
	return id, nil
}

package delivery

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/keyferry/keyferry/internal/api"
)

// DefaultContainerPath is where the container-credentials endpoint is
// served unless LocalConfig.ContainerPath says otherwise.
const DefaultContainerPath = "/creds"

// ContainerConfig configures a ContainerHandler.
type ContainerConfig struct {
	// Source yields the credentials; it should be a *Cached so that
	// requests do not reach the broker.
	Source Source
	// Token is the exact value callers must send in Authorization (no
	// "Bearer " prefix): AWS_CONTAINER_AUTHORIZATION_TOKEN. Required.
	Token string
	// RoleARN, when set, is served as RoleArn, as the ECS agent does. The
	// SDKs ignore it.
	RoleARN string
	Logger  *slog.Logger
	Now     func() time.Time
}

// ContainerHandler serves the container credential provider's document
// (AWS_CONTAINER_CREDENTIALS_FULL_URI, delivery-contracts.md §4) to
// callers that present the token. It answers every path it is given:
// mount it on one path, behind Guard (LocalServer does both).
type ContainerHandler struct {
	token   []byte
	roleARN string
	docs    docCache
}

var _ http.Handler = (*ContainerHandler)(nil)

// NewContainerHandler checks cfg and returns the handler.
func NewContainerHandler(cfg ContainerConfig) (*ContainerHandler, error) {
	var errs []error
	if cfg.Source == nil {
		errs = append(errs, errors.New("delivery: container endpoint: no credential source"))
	}
	if err := checkToken(cfg.Token); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	h := &ContainerHandler{token: []byte(cfg.Token), roleARN: cfg.RoleARN}
	h.docs = docCache{src: cfg.Source, now: orNow(cfg.Now), log: orDiscard(cfg.Logger), render: h.render}
	return h, nil
}

// checkToken rejects tokens that real clients cannot send or that are too
// short to be unguessable.
func checkToken(tok string) error {
	if len(tok) < 16 {
		return errors.New("delivery: container endpoint: the authorization token must have at least 16 characters")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c >= 0x7f {
			// botocore and Go refuse header values with control characters
			// or newlines; keep to printable ASCII without spaces.
			return errors.New("delivery: container endpoint: the authorization token must be printable ASCII without spaces")
		}
	}
	return nil
}

var (
	errMissingToken = &refusal{http.StatusUnauthorized, "missing_authorization",
		"send the endpoint's token in the Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN)"}
	errWrongToken = &refusal{http.StatusForbidden, "invalid_authorization",
		"the Authorization header does not carry this endpoint's token"}
)

// ServeHTTP implements http.Handler.
func (h *ContainerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch vals := r.Header["Authorization"]; {
	case len(vals) == 0 || (len(vals) == 1 && vals[0] == ""):
		errMissingToken.write(w)
		return
	case len(vals) > 1:
		errWrongToken.write(w)
		return
	case subtle.ConstantTimeCompare([]byte(vals[0]), h.token) != 1:
		// ConstantTimeCompare returns early only on a length mismatch; a
		// token's length is not a secret (generated ones are 43 characters).
		errWrongToken.write(w)
		return
	}
	if r.Method != http.MethodGet {
		methodNotAllowed(w, http.MethodGet)
		return
	}
	h.docs.serve(w, r, hdrJSON)
}

// containerDocument is the container provider's JSON. botocore requires
// Token and Expiration; AccountId and RoleArn are optional.
type containerDocument struct {
	documentCredentials
	AccountID string `json:"AccountId,omitempty"`
	RoleARN   string `json:"RoleArn,omitempty"`
}

func (h *ContainerHandler) render(resp *api.CredsResponse, _ time.Time) ([]byte, error) {
	return json.Marshal(containerDocument{
		documentCredentials: documentCredentialsOf(resp.Credentials),
		AccountID:           resp.Credentials.AccountID,
		RoleARN:             h.roleARN,
	})
}

func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

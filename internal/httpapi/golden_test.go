package httpapi

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/admintoken"
	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/lease"
	"github.com/keyferry/keyferry/internal/policy"
)

// TestResponsesMatchGolden pins the JSON of every response body the
// handlers build (field names, order, omitempty, null vs []) against
// testdata/*.json. Those files were written by the handlers' rendering
// before the api types existed; a difference is a change of the wire
// format that users see.
func TestResponsesMatchGolden(t *testing.T) {
	full, minimal := fullLease(), minimalLease()
	tests := []struct {
		name string
		body any
	}{
		{name: "lease_full", body: leaseToAPI(full, fixtureNow)},
		{name: "lease_minimal", body: leaseToAPI(minimal, fixtureNow)},
		{name: "lease_list", body: api.LeaseList{Leases: leasesToAPI([]lease.Lease{full, minimal}, fixtureNow), Next: minimal.ID}},
		{name: "lease_list_empty", body: api.LeaseList{Leases: leasesToAPI(nil, fixtureNow)}},
		{name: "bulk_revoke", body: api.BulkRevokeResult{Count: 2, Error: "internal error", Leases: leasesToAPI([]lease.Lease{full, minimal}, fixtureNow)}},
		{name: "bulk_revoke_dry", body: api.BulkRevokeResult{DryRun: true, Leases: leasesToAPI(nil, fixtureNow)}},
		{name: "sweep", body: api.SweepResult{DryRun: true, Orphans: orphansToAPI(fixtureOrphans())}},
		{name: "sweep_none", body: api.SweepResult{Orphans: orphansToAPI(nil)}},
		{name: "role_full", body: RoleToAPI(fullRole())},
		{name: "role_minimal", body: RoleToAPI(minimalRole())},
		{name: "role_list", body: api.RoleList{Roles: rolesToAPI([]policy.Role{fullRole(), minimalRole()})}},
		{name: "role_list_empty", body: api.RoleList{Roles: rolesToAPI([]policy.Role{})}},
		{name: "role_write", body: api.WriteResult[api.Role]{Outcome: "updated", Object: RoleToAPI(fullRole())}},
		{name: "issuer_full", body: IssuerToAPI(fullIssuer())},
		{name: "issuer_minimal", body: IssuerToAPI(minimalIssuer())},
		{name: "issuer_list", body: api.IssuerList{Issuers: issuersToAPI([]identity.Issuer{fullIssuer(), minimalIssuer()})}},
		{name: "issuer_list_empty", body: api.IssuerList{Issuers: issuersToAPI([]identity.Issuer{})}},
		{name: "issuer_write", body: api.WriteResult[api.Issuer]{Outcome: "created", Object: IssuerToAPI(minimalIssuer())}},
		{name: "token_list", body: api.TokenList{Tokens: tokensToAPI([]admintoken.Token{fixtureToken()})}},
		{name: "token_list_empty", body: api.TokenList{Tokens: tokensToAPI(nil)}},
		{name: "deleted", body: api.Deleted{Deleted: "deploy"}},
		{name: "healthz", body: api.Status{Status: "ok"}},
		{name: "readyz", body: api.Status{Status: "ready"}},
		{name: "readyz_not_ready", body: api.Status{Status: "not ready"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", tt.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n') // as writeJSON sends it
			if !bytes.Equal(got, want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestGoldenInputsDecodeToTheDomain reads the golden roles and issuers the
// way a PUT body is read (strict decode into the api type, then the
// conversion) and wants the domain objects they were written from.
func TestGoldenInputsDecodeToTheDomain(t *testing.T) {
	tests := []struct {
		name string
		read func(*json.Decoder) (any, error)
		want any
	}{
		{name: "role_full", want: fullRole(), read: func(d *json.Decoder) (any, error) {
			var r api.Role
			err := d.Decode(&r)
			return RoleFromAPI(r), err
		}},
		{name: "role_minimal", want: minimalRole(), read: func(d *json.Decoder) (any, error) {
			var r api.Role
			err := d.Decode(&r)
			return RoleFromAPI(r), err
		}},
		{name: "issuer_full", want: fullIssuer(), read: func(d *json.Decoder) (any, error) {
			var is api.Issuer
			err := d.Decode(&is)
			return IssuerFromAPI(is), err
		}},
		{name: "issuer_minimal", want: minimalIssuer(), read: func(d *json.Decoder) (any, error) {
			var is api.Issuer
			err := d.Decode(&is)
			return IssuerFromAPI(is), err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			d := json.NewDecoder(bytes.NewReader(b))
			d.DisallowUnknownFields()
			got, err := tt.read(d)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(normalizeRaw(tt.want), normalizeRaw(got)); diff != "" {
				t.Errorf("decoded object differs (-want +got):\n%s", diff)
			}
		})
	}
}

// normalizeRaw compacts a role's raw JSON policies, which the encoder
// compacts too, so that only their content is compared.
func normalizeRaw(v any) any {
	r, ok := v.(policy.Role)
	if !ok {
		return v
	}
	for _, p := range []*json.RawMessage{&r.AWS.SessionPolicy, &r.AWS.UserPolicy} {
		if len(*p) > 0 {
			var b bytes.Buffer
			if json.Compact(&b, *p) == nil {
				*p = b.Bytes()
			}
		}
	}
	return r
}

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyferry/keyferry/internal/api"
	"github.com/keyferry/keyferry/internal/client"
	"github.com/keyferry/keyferry/internal/httpapi"
	"github.com/keyferry/keyferry/internal/identity"
	"github.com/keyferry/keyferry/internal/policy"
)

// Manifest is the document `keyferry apply` reads: the API's own issuer
// and role types, decoded as strictly as the server decodes them.
type Manifest struct {
	Issuers []api.Issuer `json:"issuers,omitempty"`
	Roles   []api.Role   `json:"roles,omitempty"`
}

func newApplyCmd(e *env) *cobra.Command {
	var (
		file          string
		dryRun, prune bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Make the server's issuers and roles match a YAML manifest (idempotent)",
		Long: `Make the server's issuers and roles match a manifest:

  issuers:
    - name: gitlab
      kind: gitlab
      url: https://gitlab.example.com
      audiences: [https://keyferry.example.com]
  roles:
    - name: deploy
      issuer: gitlab
      match: { project_id: "42", ref_protected: "true" }
      aws: { type: assume_role, role_arn: "arn:aws:iam::123456789012:role/deploy" }

Every object is validated by the server first; the plan shows what will be
created (+), updated (~, with a diff) or left alone (=). --dry-run stops
after the plan. --prune also deletes roles and issuers absent from the file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var m Manifest
			if err := readDoc(e, file, &m); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return apply(cmd.Context(), e, c, m, dryRun, prune)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "manifest file (YAML or JSON; - for stdin)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show the plan, change nothing")
	cmd.Flags().BoolVar(&prune, "prune", false, "delete roles and issuers that are not in the file")
	return cmd
}

type planItem struct {
	kind, name, outcome string
	diff                []string
	issuer              *api.Issuer
	role                *api.Role
}

// planPut asks the server what writing v would do (a dry run) and returns
// it as a plan item; old holds the stored objects by name, for the diff.
func planPut[T api.Role | api.Issuer](ctx context.Context, c *client.Client, o storedObject[T], v T, old map[string]T) (planItem, error) {
	res, err := o.put(c, ctx, v, true)
	if err != nil {
		return planItem{}, err
	}
	name := *o.name(&v)
	it := planItem{kind: o.kind, name: name, outcome: res.Outcome}
	if res.Outcome == "updated" {
		it.diff = jsonDiff(old[name], res.Object)
	}
	return it, nil
}

func apply(ctx context.Context, e *env, c *client.Client, m Manifest, dryRun, prune bool) error {
	seen := map[string]bool{}
	for _, is := range m.Issuers {
		if seen["issuer/"+is.Name] {
			return fmt.Errorf("issuer %q appears twice in the file", is.Name)
		}
		seen["issuer/"+is.Name] = true
	}
	for _, r := range m.Roles {
		if seen["role/"+r.Name] {
			return fmt.Errorf("role %q appears twice in the file", r.Name)
		}
		seen["role/"+r.Name] = true
	}

	curIssuers, err := c.Issuers(ctx)
	if err != nil {
		return err
	}
	curRoles, err := c.Roles(ctx)
	if err != nil {
		return err
	}
	oldIssuer := map[string]api.Issuer{}
	for _, is := range curIssuers {
		oldIssuer[is.Name] = is
	}
	oldRole := map[string]api.Role{}
	for _, r := range curRoles {
		oldRole[r.Name] = r
	}

	var plan []planItem
	newIssuers := map[string]bool{}
	var problems []string
	for i := range m.Issuers {
		it, err := planPut(ctx, c, issuers, m.Issuers[i], oldIssuer)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		it.issuer = &m.Issuers[i]
		if it.outcome == "created" || it.outcome == "updated" {
			newIssuers[it.name] = true
		}
		plan = append(plan, it)
	}
	for i := range m.Roles {
		r := m.Roles[i]
		if newIssuers[r.Issuer] {
			// The server cannot validate a role against an issuer it does
			// not have yet: compile it here against the manifest's issuer
			// (the server checks again when it is written), read from the
			// manifest by the same conversion the server applies to a PUT.
			if _, err := policy.Compile(httpapi.RoleFromAPI(r), issuerKind(m.Issuers, r.Issuer)); err != nil {
				problems = append(problems, fmt.Sprintf("role %q: %v", r.Name, err))
				continue
			}
			outcome := "created"
			if _, ok := oldRole[r.Name]; ok {
				outcome = "updated"
			}
			plan = append(plan, planItem{kind: "role", name: r.Name, outcome: outcome, role: &m.Roles[i]})
			continue
		}
		it, err := planPut(ctx, c, roles, r, oldRole)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		it.role = &m.Roles[i]
		plan = append(plan, it)
	}
	if prune {
		for _, r := range curRoles {
			if !seen["role/"+r.Name] {
				plan = append(plan, planItem{kind: "role", name: r.Name, outcome: "deleted"})
			}
		}
		for _, is := range curIssuers {
			if !seen["issuer/"+is.Name] {
				plan = append(plan, planItem{kind: "issuer", name: is.Name, outcome: "deleted"})
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the manifest has problems; nothing was changed:\n%s", strings.Join(problems, "\n"))
	}

	changes := 0
	for _, it := range plan {
		sign := map[string]string{"created": "+", "updated": "~", "unchanged": "=", "deleted": "-"}[strings.Fields(it.outcome)[0]]
		fmt.Fprintf(e.stdout, "%s %s %s (%s)\n", sign, it.kind, it.name, it.outcome)
		for _, d := range it.diff {
			fmt.Fprintf(e.stdout, "    %s\n", d)
		}
		if it.outcome != "unchanged" {
			changes++
		}
	}
	if dryRun {
		fmt.Fprintf(e.stdout, "dry run: %d change(s) planned, none made\n", changes)
		return nil
	}
	if changes == 0 {
		fmt.Fprintln(e.stdout, "nothing to do")
		return nil
	}
	// Order: issuers before the roles that use them; deletions of roles
	// before deletions of issuers.
	for _, it := range plan {
		if it.kind == "issuer" && it.issuer != nil && it.outcome != "unchanged" {
			if _, err := c.PutIssuer(ctx, *it.issuer, false); err != nil {
				return fmt.Errorf("issuer %s: %w", it.name, err)
			}
		}
	}
	for _, it := range plan {
		switch {
		case it.kind == "role" && it.role != nil && it.outcome != "unchanged":
			if _, err := c.PutRole(ctx, *it.role, false); err != nil {
				return fmt.Errorf("role %s: %w", it.name, err)
			}
		case it.kind == "role" && it.outcome == "deleted":
			if err := c.DeleteRole(ctx, it.name); err != nil {
				return fmt.Errorf("role %s: %w", it.name, err)
			}
		}
	}
	for _, it := range plan {
		if it.kind == "issuer" && it.outcome == "deleted" {
			if err := c.DeleteIssuer(ctx, it.name); err != nil {
				return fmt.Errorf("issuer %s: %w", it.name, err)
			}
		}
	}
	fmt.Fprintf(e.stdout, "applied %d change(s)\n", changes)
	return nil
}

func issuerKind(issuers []api.Issuer, name string) identity.Kind {
	for _, is := range issuers {
		if is.Name == name {
			return httpapi.IssuerFromAPI(is).Kind
		}
	}
	return identity.KindGeneric
}

// jsonDiff lists "field: old → new" for the top-level and nested fields
// that differ, in a stable order.
func jsonDiff(oldV, newV any) []string {
	flat := func(v any) map[string]string {
		b, _ := json.Marshal(v)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		out := map[string]string{}
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			if mm, ok := v.(map[string]any); ok && len(mm) > 0 {
				for k, x := range mm {
					p := k
					if prefix != "" {
						p = prefix + "." + k
					}
					walk(p, x)
				}
				return
			}
			b, _ := json.Marshal(v)
			out[prefix] = string(b)
		}
		walk("", m)
		return out
	}
	a, b := flat(oldV), flat(newV)
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if a[k] != b[k] {
			ov, nv := a[k], b[k]
			if ov == "" {
				ov = "(unset)"
			}
			if nv == "" {
				nv = "(unset)"
			}
			out = append(out, fmt.Sprintf("%s: %s → %s", k, ov, nv))
		}
	}
	return out
}

package policy

// Tag is a rendered session tag.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Rendered holds the per-issuance strings of a role.
type Rendered struct {
	// SessionName matches [\w+=,.@-]{2,64}; for iam_user roles it is the
	// IAM user name.
	SessionName string
	// Tags are sorted by key.
	Tags []Tag
	// SourceIdentity is "" when the role sets none or it renders empty.
	SourceIdentity string
}

// Render expands the role's templates with the token's claims and the
// variables role (default: the role's name) and lease_id. Missing claims
// render as "". Session name and source identity are sanitised to
// [\w+=,.@-]{2,64} (see sanitizeSTSName); tag values have characters
// outside the tag charset replaced with "_" and are cut to 256 characters.
// Render is safe for concurrent use.
func (c *Compiled) Render(claims map[string]any, vars map[string]string) (Rendered, error) {
	lookupVar := func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		if name == VarRole {
			return c.role.Name
		}
		return ""
	}
	var out Rendered
	name, err := sanitizeSTSName(c.session.render(claims, lookupVar), "session name")
	if err != nil {
		return Rendered{}, err
	}
	out.SessionName = name
	if len(c.tags) > 0 {
		out.Tags = make([]Tag, len(c.tags))
		for i := range c.tags {
			out.Tags[i] = Tag{Key: c.tags[i].key, Value: sanitizeTagValue(c.tags[i].tpl.render(claims, lookupVar))}
		}
	}
	if c.sourceID != nil {
		if raw := c.sourceID.render(claims, lookupVar); raw != "" {
			// Sanitising turns ":" into "-", so the result cannot start
			// with the reserved "aws:"; Compile rejects templates that
			// spell it out.
			id, err := sanitizeSTSName(raw, "source identity")
			if err != nil {
				return Rendered{}, err
			}
			out.SourceIdentity = id
		}
	}
	return out, nil
}

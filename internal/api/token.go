package api

import "time"

// Token is an admin token as GET /v1/admin-tokens lists it: never its
// secret or the secret's hash.
type Token struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Scopes    []string  `json:"scopes"`
	CreatedAt time.Time `json:"created_at"`
}

// TokenList is the body of GET /v1/admin-tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

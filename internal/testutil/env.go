package testutil

// Env is a getenv (os.Getenv's signature) that finds the variables of vars
// and no others.
func Env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

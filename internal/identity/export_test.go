package identity

import "time"

// CacheTTL exposes cacheTTL to the external tests.
func CacheTTL(cacheControl string) time.Duration { return cacheTTL(cacheControl) }

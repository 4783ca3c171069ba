package cikind

import "time"

// Kubernetes is the kind of Kubernetes bound (projected) service-account
// tokens.
//
// Claims: https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/.
// sub is system:serviceaccount:NAMESPACE:NAME; the kubernetes.io object
// holds namespace, serviceaccount {name, uid}, pod {name, uid} and, where
// enabled, node {name, uid}. Legacy tokens whose exp was stretched to a
// year also carry kubernetes.io.warnafter, their real expiry.
const Kubernetes = "kubernetes"

var kubernetes = Kind{
	name:        Kubernetes,
	maxTokenAge: 24 * time.Hour,
	shape: func(c map[string]any) []string {
		missing := subPrefix(nil, c, "system:serviceaccount:")
		k8s, _ := c["kubernetes.io"].(map[string]any)
		if k8s == nil {
			return append(missing, "kubernetes.io")
		}
		if stringClaim(k8s, "namespace") == "" {
			missing = append(missing, "kubernetes.io.namespace")
		}
		sa, _ := k8s["serviceaccount"].(map[string]any)
		if stringClaim(sa, "name") == "" {
			missing = append(missing, "kubernetes.io.serviceaccount.name")
		}
		return missing
	},
	expiry: &Expiry{
		Path:    []string{"kubernetes.io", "warnafter"},
		Expired: "the token is a legacy extended service-account token past its warnafter time; use a fresh projected token",
	},
	summary: func(c map[string]any) Summary {
		var s Summary
		k8s, _ := c["kubernetes.io"].(map[string]any)
		s.Project, _ = k8s["namespace"].(string)
		if sa, ok := k8s["serviceaccount"].(map[string]any); ok {
			s.User, _ = sa["name"].(string)
		}
		if pod, ok := k8s["pod"].(map[string]any); ok {
			s.Job, _ = pod["name"].(string)
		}
		return s
	},

	claims:       []string{"aud", "exp", "iat", "nbf", "iss", "jti", "sub", "kubernetes.io"},
	objectClaims: []string{"kubernetes.io"},
	claimsDoc:    "(nested fields through pointers)",
	bindings: []Binding{
		{Key: "/kubernetes.io/namespace", Rule: exact, Doc: "it is exact"},
		{Key: "sub", Rule: path(':', 1, "system:serviceaccount:"),
			Doc: "`system:serviceaccount:<namespace>:…` with a complete namespace"},
	},
	bindingHint: "a literal namespace: system:serviceaccount:NS:* is fine, system:serviceaccount:* is not",
	// A pod-less token names no pod: {lease_id} keeps names unique.
	sessionName: "k8s-{/kubernetes.io/namespace}-{lease_id}",
	perJob:      []string{"/kubernetes.io/pod/uid", "/kubernetes.io/pod/name"},

	dev: func(iss string, o DevOptions) map[string]any {
		return KubernetesClaims(iss, KubernetesOptions{Namespace: o.Project, ServiceAccount: o.User,
			Audience: o.Audience, TTL: o.TTL, Now: o.Now, JTI: o.JTI})
	},
}

// KubernetesOptions shape a bound (projected) service-account token.
// Zero fields get defaults: namespace and service account "default", pod
// dev-pod, random uids, audience DevAudience, TTL 1h, Now time.Now().
type KubernetesOptions struct {
	Namespace, ServiceAccount, ServiceAccountUID string
	PodName, PodUID                              string
	// NodeName, when set, adds kubernetes.io.node (NodeUID default random).
	NodeName, NodeUID string
	Audience          []string
	TTL               time.Duration
	Now               time.Time
	// WarnAfter, when set, adds kubernetes.io.warnafter, as in the legacy
	// extended tokens whose exp was stretched to a year.
	WarnAfter time.Time
	JTI       string
}

// KubernetesClaims returns the claims of a Kubernetes bound
// service-account token issued by iss. aud is always an array, as the
// kube-apiserver emits it; nbf equals iat.
func KubernetesClaims(iss string, o KubernetesOptions) map[string]any {
	def(&o.Namespace, "default")
	def(&o.ServiceAccount, "default")
	def(&o.ServiceAccountUID, randomUUID())
	def(&o.PodName, "dev-pod")
	def(&o.PodUID, randomUUID())
	def(&o.JTI, randomUUID())
	if len(o.Audience) == 0 {
		o.Audience = []string{DevAudience}
	}
	defTimes(&o.TTL, &o.Now, time.Hour)
	k8s := map[string]any{
		"namespace":      o.Namespace,
		"serviceaccount": map[string]any{"name": o.ServiceAccount, "uid": o.ServiceAccountUID},
		"pod":            map[string]any{"name": o.PodName, "uid": o.PodUID},
	}
	if o.NodeName != "" {
		def(&o.NodeUID, randomUUID())
		k8s["node"] = map[string]any{"name": o.NodeName, "uid": o.NodeUID}
	}
	if !o.WarnAfter.IsZero() {
		k8s["warnafter"] = o.WarnAfter.Unix()
	}
	iat := o.Now.Unix()
	return map[string]any{
		"iss":           iss,
		"sub":           "system:serviceaccount:" + o.Namespace + ":" + o.ServiceAccount,
		"aud":           append([]string(nil), o.Audience...),
		"iat":           iat,
		"nbf":           iat,
		"exp":           iat + int64(o.TTL/time.Second),
		"jti":           o.JTI,
		"kubernetes.io": k8s,
	}
}

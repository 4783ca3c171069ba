package cikind_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyferry/keyferry/internal/cikind"
)

func TestKubernetesClaims(t *testing.T) {
	c := cikind.KubernetesClaims("https://k8s.example.com", cikind.KubernetesOptions{
		Namespace: "ci", ServiceAccount: "deployer", ServiceAccountUID: "sa-uid", PodName: "runner-1", PodUID: "pod-uid",
		NodeName: "node-a", NodeUID: "node-uid", Now: t0, JTI: "j",
	})
	want := map[string]any{
		"iss": "https://k8s.example.com", "sub": "system:serviceaccount:ci:deployer", "aud": []string{cikind.DevAudience},
		"iat": t0.Unix(), "nbf": t0.Unix(), "exp": t0.Add(time.Hour).Unix(), "jti": "j",
		"kubernetes.io": map[string]any{
			"namespace":      "ci",
			"serviceaccount": map[string]any{"name": "deployer", "uid": "sa-uid"},
			"pod":            map[string]any{"name": "runner-1", "uid": "pod-uid"},
			"node":           map[string]any{"name": "node-a", "uid": "node-uid"},
		},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	legacy := cikind.KubernetesClaims("https://k8s.example.com", cikind.KubernetesOptions{
		Now: t0, TTL: 365 * 24 * time.Hour, WarnAfter: t0.Add(time.Hour)})
	k8s := legacy["kubernetes.io"].(map[string]any)
	if k8s["warnafter"] != t0.Add(time.Hour).Unix() {
		t.Errorf("got warnafter %v, want %d", k8s["warnafter"], t0.Add(time.Hour).Unix())
	}
	if _, ok := k8s["node"]; ok {
		t.Error("got a node claim without NodeName, want none")
	}
	if got := legacy["sub"]; got != "system:serviceaccount:default:default" {
		t.Errorf("got default sub %v, want system:serviceaccount:default:default", got)
	}
}

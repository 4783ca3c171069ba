package client

import (
	"strings"
	"testing"
)

func TestNewRefusesPlainHTTPToRemoteHosts(t *testing.T) {
	tests := []struct {
		addr    string
		allow   bool
		wantErr string
	}{
		{addr: "https://keyferry.example.com"},
		{addr: "http://127.0.0.1:8200"},
		{addr: "http://localhost:8200"},
		{addr: "http://[::1]:8200"},
		{addr: "http://keyferry.example.com", wantErr: "refusing plain HTTP"},
		{addr: "http://10.0.0.5:8200", wantErr: "refusing plain HTTP"},
		{addr: "http://keyferry.example.com", allow: true},
		{addr: "ftp://x", wantErr: "not an http(s) URL"},
		{addr: "", wantErr: "KEYFERRY_ADDR"},
	}
	for _, tt := range tests {
		_, err := New(tt.addr, Options{AllowInsecureHTTP: tt.allow})
		if tt.wantErr == "" && err != nil {
			t.Errorf("%s: %v", tt.addr, err)
		}
		if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: got %v, want %q", tt.addr, err, tt.wantErr)
		}
	}
}

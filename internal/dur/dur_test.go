package dur

import (
	"encoding/json"
	"testing"
	"time"
)

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "string", in: `"1h30m"`, want: 90 * time.Minute},
		{name: "seconds", in: `900`, want: 15 * time.Minute},
		{name: "bad string", in: `"soon"`, wantErr: true},
		{name: "fraction", in: `1.5`, wantErr: true},
		{name: "object", in: `{}`, wantErr: true},
		{name: "huge", in: `99999999999999999`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Duration
			err := json.Unmarshal([]byte(tt.in), &d)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && d.D() != tt.want {
				t.Fatalf("got %v, want %v", d.D(), tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	b, err := json.Marshal(Duration(45 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `"45s"` {
		t.Fatalf("got %s, want \"45s\"", b)
	}
}

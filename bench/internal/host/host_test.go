package host

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestLoadAvg(t *testing.T) {
	if _, err := os.Stat("/proc/loadavg"); err != nil {
		if got := LoadAvg(); got != "?" {
			t.Errorf("LoadAvg() without /proc/loadavg = %q, want ?", got)
		}
		return
	}
	if got := LoadAvg(); !regexp.MustCompile(`^\d+\.\d+ \d+\.\d+ \d+\.\d+$`).MatchString(got) {
		t.Errorf("LoadAvg() = %q, want three decimals", got)
	}
}

func TestCPUModel(t *testing.T) {
	b, err := os.ReadFile("/proc/cpuinfo")
	got := CPUModel()
	if err != nil || !strings.Contains(string(b), "model name") {
		if got != "unknown model" {
			t.Errorf("CPUModel() without a model name = %q, want unknown model", got)
		}
		return
	}
	if got == "unknown model" || got != strings.TrimSpace(got) || !strings.Contains(string(b), got) {
		t.Errorf("CPUModel() = %q, want the trimmed model name of /proc/cpuinfo", got)
	}
}

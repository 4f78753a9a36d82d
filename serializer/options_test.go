package serializer_test

import (
	"strings"
	"testing"

	"github.com/fishgate/fishgate/internal/testkit"
	"github.com/fishgate/fishgate/serializer"
)

// TestNewRefusesMissingOptions: the options the configuration file states
// have no second default here: New names each one left out, and takes
// the configured ones as they are.
func TestNewRefusesMissingOptions(t *testing.T) {
	_, err := serializer.New(nil, serializer.Options{Redis: testkit.MiniRedis(t), Retries: -1, SoftOffFallback: "sometimes"})
	if err == nil {
		t.Fatal("New without the configured options: no error")
	}
	for _, want := range []string{"ReplicaID", "Rules", "LeaseTTL", "SyncInterval", "SyncConcurrency", "SyncPerKind",
		"VerifyTimeout", "SoftOffTimeout", "SoftOffFallback", "RestartEvidence", "Retries", "KeepTasks", "KeepTaskAge"} {
		if !strings.Contains(err.Error(), "Options."+want+" ") {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := serializer.New(nil, serializer.Options{}); err == nil || !strings.Contains(err.Error(), "Options.Redis") {
		t.Errorf("New without Redis: %v", err)
	}
	o := configuredOptions()
	o.Redis, o.ReplicaID = testkit.MiniRedis(t), "r1"
	svc, err := serializer.New(nil, o)
	if err != nil {
		t.Fatalf("New with the configured options: %v", err)
	}
	svc.Close()
}

package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fishgate/fishgate/app/config"
	"github.com/fishgate/fishgate/simulator"
)

// BenchmarkOperatorPageFirstPaint measures, in chromium, how long the
// operator page takes from navigation to its first paint of the fleet
// (performance.now() in the frame after the first rows are drawn) and to
// the whole fleet read, with 10,000 simulated Redfish BMCs behind one
// gateway. The session is made before the navigation, so the figures are
// the page's: its account and fleet reads and drawing. `make bench` runs
// it; `make test` does not (nothing is asserted about time).
func BenchmarkOperatorPageFirstPaint(b *testing.B) {
	const nodes = 10000
	browser := newBrowser(b)
	fleet := simulator.NewFleet(discardLogger())
	b.Cleanup(func() { fleet.Close() })
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.TLS.Disabled = true
	cfg.SyncInterval = config.Duration(time.Hour)
	cfg.Accounts = []config.Account{{User: uiAdmin, Password: uiAdminPass, Role: "Administrator"}}
	for i := 1; i <= nodes; i++ {
		id := fmt.Sprintf("node%05d", i)
		sn, err := fleet.Add(simulator.NodeSpec{ID: id, Machine: simulator.MachineConfig{InitialPower: "Off"}})
		if err != nil {
			b.Fatal(err)
		}
		cfg.Nodes = append(cfg.Nodes, config.Node{ID: id, Backend: "redfish", Address: sn.URL(), User: "admin", Password: "password"})
	}
	start := time.Now()
	url := startReplica(b, cfg, discardLogger())
	b.Logf("%d nodes: gateway ready in %.1fs", nodes, time.Since(start).Seconds())
	st, hdr, body := do(b, http.MethodPost, url+"/redfish/v1/SessionService/Sessions",
		fmt.Sprintf(`{"UserName":%q,"Password":%q}`, uiAdmin, uiAdminPass), nil)
	if st != http.StatusCreated {
		b.Fatalf("login: %d %s", st, body)
	}
	p := tab(b, browser, b.TempDir())
	p.do("open the page", chromedp.Navigate(url+"/ui/"), chromedp.WaitVisible("#login-user"))
	p.do("keep the session", chromedp.Evaluate[chromedp.Void](fmt.Sprintf(
		`sessionStorage.setItem('fishgate.token', %q); sessionStorage.setItem('fishgate.session', %q); sessionStorage.setItem('fishgate.user', %q)`,
		hdr.Get("X-Auth-Token"), hdr.Get("Location"), uiAdmin)))
	var paint, loaded float64
	b.ResetTimer()
	for range b.N {
		p.do("reload", chromedp.Reload())
		p.waitJS("the first paint", `typeof window.fishgateFirstPaint === 'number'`)
		p.waitJS("the whole fleet read", `document.body.dataset.fleetLoaded === 'true'`)
		paint += eval[float64](p, `window.fishgateFirstPaint`)
		loaded += eval[float64](p, `window.fishgateFleetLoaded`)
		if n := eval[string](p, `document.getElementById('fleet-count').textContent`); !strings.HasPrefix(n, fmt.Sprintf("%d of %d", nodes, nodes)) {
			b.Fatalf("the page lists %q, want all %d nodes", n, nodes)
		}
		if rows := eval[int](p, `document.querySelectorAll('#rows .row').length`); rows > 200 {
			b.Fatalf("%d rows in the page for %d nodes: the list is not virtualised", rows, nodes)
		}
	}
	b.StopTimer()
	b.ReportMetric(paint/float64(b.N), "ms-first-paint")
	b.ReportMetric(loaded/float64(b.N), "ms-fleet-read")
}

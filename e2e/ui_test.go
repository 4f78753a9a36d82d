package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestOperatorPage drives the operator page (/ui/) in headless chromium
// against two gateway replicas behind one URL; one browser serves every
// subtest, each waits on what the page shows (never on time). The
// subtests run in order: each starts from the state the one before left.
func TestOperatorPage(t *testing.T) {
	browser := newBrowser(t)
	env := startUIEnv(t, 6)
	shots := screenshotDir(t)
	t.Logf("screenshots in %s", shots)
	// node4..node6 form the aggregate the bulk subtest resets.
	st, _, body := do(t, http.MethodPost, env.replicas[0]+"/redfish/v1/AggregationService/Aggregates",
		`{"Name":"rack2","Elements":[{"@odata.id":"/redfish/v1/Systems/node4"},{"@odata.id":"/redfish/v1/Systems/node5"},{"@odata.id":"/redfish/v1/Systems/node6"}]}`,
		basicAuth(uiAdmin, uiAdminPass))
	if st != http.StatusCreated {
		t.Fatalf("create aggregate: %d %s", st, body)
	}
	admin := tab(t, browser, shots)

	t.Run("login shows the fleet", func(t *testing.T) {
		admin.t = t
		// The page's security headers: no inline script can run, no other origin.
		st, hdr, _ := do(t, http.MethodGet, env.url+"/ui/", nil, nil)
		if st != http.StatusOK || !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Fatalf("GET /ui/: %d, Content-Security-Policy %q", st, hdr.Get("Content-Security-Policy"))
		}
		admin.login(env.url, uiAdmin, uiAdminPass)
		admin.waitJS("six nodes listed", `document.querySelectorAll('#rows .row:not([hidden])').length === 6`)
		admin.waitJS("the live indicator says live", `document.getElementById('live').dataset.state === 'live'`)
		for i := 1; i <= 6; i++ {
			if got := eval[string](admin, rowField(fmt.Sprintf("node%d", i), "c-power")); got != "Off" {
				t.Errorf("node%d shows power %q, want Off", i, got)
			}
		}
		if got := eval[string](admin, `document.getElementById('sum-off').textContent`); got != "6" {
			t.Errorf("summary Off = %q, want 6", got)
		}
		admin.shot("fleet")
	})

	t.Run("On runs and completes live", func(t *testing.T) {
		admin.t = t
		m := uiMachine(t, env, "node1")
		release := m.HoldTransitions()
		defer release()
		admin.do("open node1", chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`),
			chromedp.Click(`#rows .row[data-node="node1"] .c-id button`), chromedp.WaitVisible(`#node-actions button[data-reset="On"]`))
		admin.do("press On", chromedp.Click(`#node-actions button[data-reset="On"]`))
		admin.waitJS("the task Running", `document.querySelector('#node-tasks li[data-state="Running"]') !== null`)
		admin.waitJS("the fleet row shows the running On", rowField("node1", "c-running")+` === 'On'`)
		admin.shot("running")
		release()
		admin.waitJS("the task Completed", `document.querySelector('#node-tasks li[data-state="Completed"]') !== null`)
		admin.waitJS("node1 On in the fleet", rowField("node1", "c-power")+` === 'On'`)
		admin.waitJS("node1 On in the node view", `document.querySelector('#node-facts dd[data-fact="Power"]').textContent === 'On'`)
		if !eval[bool](admin, `window.__notReloaded === true`) {
			t.Error("the page was reloaded")
		}
		admin.shot("completed")
	})

	t.Run("abort a running soft off", func(t *testing.T) {
		admin.t = t
		m := uiMachine(t, env, "node1")
		release := m.HoldTransitions()
		defer release()
		admin.do("press Soft off", chromedp.Click(`#node-actions button[data-reset="GracefulShutdown"]`))
		admin.waitJS("an Abort button on the running soft off",
			`[...document.querySelectorAll('#node-tasks li[data-state="Running"]')].some((li) => li.textContent.startsWith('GracefulShutdown') && li.querySelector('button[data-abort]'))`)
		admin.do("press Abort", chromedp.Click(`#node-tasks li[data-state="Running"] button[data-abort]`))
		admin.waitJS("the soft off Cancelling", `document.querySelector('#node-tasks li[data-state="Cancelling"]') !== null`)
		// The gateway watches a cancelled soft off for a grace period (the
		// OS may be shutting down already); the machine ending its
		// transition ends it.
		release()
		admin.waitJS("the soft off Cancelled",
			`[...document.querySelectorAll('#node-tasks li[data-state="Cancelled"]')].some((li) => li.textContent.startsWith('GracefulShutdown'))`)
		admin.shot("aborted")
	})

	t.Run("bulk reset of an aggregate shows progress to 100 %", func(t *testing.T) {
		admin.t = t
		admin.do("choose rack2, On, batches of 1",
			chromedp.Evaluate[chromedp.Void](`window.__percents = []; new MutationObserver(() => window.__percents.push(document.getElementById('bulk-status').dataset.percent)).observe(document.getElementById('bulk-status'), {attributes: true})`),
			chromedp.SetValue("#bulk-target", "rack2"), chromedp.SetValue("#bulk-reset", "On"),
			chromedp.SetValue("#bulk-size", "1"), chromedp.SetValue("#bulk-delay", "0"),
			chromedp.Click("#bulk-run"))
		admin.waitJS("the bulk task Completed at 100 %",
			`document.getElementById('bulk-status').dataset.state === 'Completed' && document.getElementById('bulk-progress').value === 100`)
		for _, n := range []string{"node4", "node5", "node6"} {
			admin.waitJS(n+" On", rowField(n, "c-power")+` === 'On'`)
		}
		percents := eval[[]string](admin, `window.__percents`)
		if len(percents) < 2 || percents[len(percents)-1] != "100" || slices.Index(percents, "100") < 1 {
			t.Errorf("progress shown %v: want a rise to 100", percents)
		}
		admin.shot("bulk")
	})

	t.Run("ReadOnly sees no actions and is refused", func(t *testing.T) {
		viewer := tab(t, browser, shots)
		viewer.login(env.url, uiViewer, uiViewerPass)
		viewer.waitJS("six nodes listed", `document.querySelectorAll('#rows .row:not([hidden])').length === 6`)
		viewer.do("open node2", chromedp.Click(`#rows .row[data-node="node2"] .c-id button`), chromedp.WaitVisible(`#node-facts`))
		viewer.waitJS("node2's facts", `document.querySelector('#node-facts dd[data-fact="Power"]') !== null`)
		visibleButtons := eval[[]string](viewer, `[...document.querySelectorAll('#app button')].filter((b) => b.offsetParent !== null).map((b) => b.textContent)`)
		for _, b := range visibleButtons {
			if b != "Log out" && b != "Close" && !strings.HasPrefix(b, "node") {
				t.Errorf("a ReadOnly user sees the button %q", b)
			}
		}
		status := eval[int](viewer, `fetch('/redfish/v1/Systems/node2/Actions/ComputerSystem.Reset', {method: 'POST',
			headers: {'Content-Type': 'application/json', 'X-Auth-Token': sessionStorage.getItem('fishgate.token')},
			body: JSON.stringify({ResetType: 'On'})}).then((r) => r.status)`)
		if status != http.StatusForbidden {
			t.Errorf("a ReadOnly user's direct POST of a Reset: status %d, want 403", status)
		}
		viewer.shot("readonly")
	})

	t.Run("the page resumes after its SSE stream is cut", func(t *testing.T) {
		admin.t = t
		admin.waitJS("live", `document.getElementById('live').dataset.state === 'live'`)
		if n := env.proxy.cut(); n == 0 {
			t.Fatal("no SSE stream was open through the proxy")
		}
		admin.waitJS("the indicator says reconnecting", `document.getElementById('live').dataset.state === 'reconnecting'`)
		// While the page has no stream, node3 is powered on through the API.
		task := uiReset(t, env.replicas[1], "node3", "On")
		waitFor(t, powerTimeout, "node3 On at the gateway", func() (bool, string) {
			st, _, b := do(t, http.MethodGet, env.replicas[0]+task, nil, basicAuth(uiAdmin, uiAdminPass))
			return st == http.StatusOK && strings.Contains(string(b), `"TaskState":"Completed"`), string(b)
		})
		if got := eval[string](admin, rowField("node3", "c-power")); got != "Off" {
			t.Fatalf("node3 shows %q before the stream is back; want Off (the page learns by events only)", got)
		}
		admin.shot("reconnecting")
		env.proxy.resume()
		admin.waitJS("the indicator says live again", `document.getElementById('live').dataset.state === 'live'`)
		admin.waitJS("node3 On, from the events missed while cut", rowField("node3", "c-power")+` === 'On'`)
		ids := env.proxy.seenLastEventIDs()
		if last := ids[len(ids)-1]; last == "" {
			t.Errorf("the page reconnected without Last-Event-ID (headers seen: %q)", ids)
		}
	})

	t.Run("two replicas behind one URL, events from either", func(t *testing.T) {
		admin.t = t
		for i := range env.proxy.served {
			if n := env.proxy.served[i].Load(); n == 0 {
				t.Errorf("replica %d served no request of the page", i)
			}
		}
		admin.waitJS("live", `document.getElementById('live').dataset.state === 'live'`)
		// Each replica admits one action; the page's one stream, on one
		// of them, shows both.
		stream := env.proxy.streamReplica()
		uiReset(t, env.replicas[stream], "node2", "On")
		uiReset(t, env.replicas[1-stream], "node4", "ForceOff")
		admin.waitJS("node2 On", rowField("node2", "c-power")+` === 'On'`)
		admin.waitJS("node4 Off", rowField("node4", "c-power")+` === 'Off'`)
		admin.do("show node2", chromedp.Click(`#rows .row[data-node="node2"] .c-id button`))
		admin.waitJS("node2's completed On", `document.querySelector('#node-tasks li[data-state="Completed"]') !== null`)
		admin.shot("replicas")
	})
}

// uiMachine is the simulated machine of node.
func uiMachine(t *testing.T, env *uiEnv, node string) interface{ HoldTransitions() func() } {
	t.Helper()
	n, ok := env.fleet.Node(node)
	if !ok {
		t.Fatalf("no simulated node %s", node)
	}
	return n.Machine()
}

// uiReset posts a Reset to one replica as the administrator and returns
// the task's path.
func uiReset(t *testing.T, replica, node, rt string) string {
	t.Helper()
	st, hdr, b := do(t, http.MethodPost, replica+"/redfish/v1/Systems/"+node+"/Actions/ComputerSystem.Reset",
		`{"ResetType":"`+rt+`"}`, basicAuth(uiAdmin, uiAdminPass))
	if st != http.StatusAccepted {
		t.Fatalf("%s %s: %d %s", rt, node, st, b)
	}
	return strings.Replace(hdr.Get("Location"), "TaskMonitors", "Tasks", 1)
}

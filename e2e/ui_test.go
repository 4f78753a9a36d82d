package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
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
		// Every visible control has a name a screen reader can say.
		unnamed := eval[[]string](admin, `[...document.querySelectorAll('#app input, #app select, #app button')]
			.filter((e) => e.offsetParent !== null && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
			.map((e) => e.id || e.outerHTML)`)
		if len(unnamed) > 0 {
			t.Errorf("controls without a label: %v", unnamed)
		}
		admin.do("filter on node5", chromedp.SendKeys("#f-text", "node5"))
		admin.waitJS("one row", `document.querySelectorAll('#rows .row:not([hidden])').length === 1 && document.querySelector('#rows .row:not([hidden])').dataset.node === 'node5'`)
		admin.set("#f-text", "")
		admin.waitJS("six rows again", `document.querySelectorAll('#rows .row:not([hidden])').length === 6`)
		admin.shot("fleet")
	})

	t.Run("On runs and completes live", func(t *testing.T) {
		admin.t = t
		m := uiMachine(t, env, "node1")
		release := m.HoldTransitions()
		defer release()
		admin.do("open node1", chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`),
			chromedp.Click(`#rows .row[data-node="node1"] .c-id button`), chromedp.WaitVisible(`#node-actions button[data-reset="On"]`))
		admin.click("press On", `#node-actions button[data-reset="On"]`)
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
		admin.waitJS("who asked, in the timeline", `document.querySelector('#node-tasks li[data-state="Completed"]').textContent.includes('by admin')`)
		admin.waitJS("the power-on event in the node's events", `[...document.querySelectorAll('#node-events li')].some((li) => li.textContent.includes('has powered on'))`)
		admin.waitJS("the On in the command log", `[...document.querySelectorAll('#node-log li')].some((li) => li.textContent.includes('event=started type=On'))`)
		admin.shot("completed")
	})

	t.Run("boot override", func(t *testing.T) {
		admin.t = t
		admin.set("#boot-target", "Pxe")
		admin.set("#boot-enabled", "Once")
		admin.do("apply", chromedp.Click("#boot-apply"))
		waitFor(t, uiTimeout, "node1's boot override Pxe/Once at the gateway", func() (bool, string) {
			_, _, b := do(t, http.MethodGet, env.replicas[1]+"/redfish/v1/Systems/node1", nil, basicAuth(uiAdmin, uiAdminPass))
			return strings.Contains(string(b), `"BootSourceOverrideTarget":"Pxe"`) && strings.Contains(string(b), `"BootSourceOverrideEnabled":"Once"`), string(b)
		})
	})

	t.Run("abort a running soft off", func(t *testing.T) {
		admin.t = t
		m := uiMachine(t, env, "node1")
		release := m.HoldTransitions()
		defer release()
		admin.click("press Soft off", `#node-actions button[data-reset="GracefulShutdown"]`)
		admin.waitJS("an Abort button on the running soft off",
			`[...document.querySelectorAll('#node-tasks li[data-state="Running"]')].some((li) => li.textContent.startsWith('GracefulShutdown') && li.querySelector('button[data-abort]'))`)
		admin.click("press Abort", `#node-tasks li[data-state="Running"] button[data-abort]`)
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
		admin.do("record the progress shown",
			chromedp.Evaluate[chromedp.Void](`window.__percents = []; new MutationObserver(() => window.__percents.push(document.getElementById('bulk-status').dataset.percent)).observe(document.getElementById('bulk-status'), {attributes: true})`))
		admin.set("#bulk-target", "rack2")
		admin.set("#bulk-reset", "On")
		admin.set("#bulk-size", "1")
		admin.set("#bulk-delay", "0")
		admin.do("run", chromedp.Click("#bulk-run"))
		admin.waitJS("the bulk task Completed at 100 %",
			`document.getElementById('bulk-status').dataset.state === 'Completed' && document.getElementById('bulk-progress').value === 100`)
		for _, n := range []string{"node4", "node5", "node6"} {
			admin.waitJS(n+" On", rowField(n, "c-power")+` === 'On'`)
		}
		admin.set("#f-aggregate", "rack2")
		admin.waitJS("the aggregate filter shows node4..node6", `[...document.querySelectorAll('#rows .row:not([hidden])')].map((r) => r.dataset.node).join() === 'node4,node5,node6'`)
		admin.set("#f-aggregate", "")
		percents := eval[[]string](admin, `window.__percents`)
		if len(percents) < 2 || percents[len(percents)-1] != "100" || slices.Index(percents, "100") < 1 {
			t.Errorf("progress shown %v: want a rise to 100", percents)
		}
		admin.shot("bulk")
	})

	t.Run("a refused request is shown and counted", func(t *testing.T) {
		admin.t = t
		// node5 (policy reject) is On after the bulk reset; while its soft
		// off runs, an On is refused.
		m := uiMachine(t, env, "node5")
		release := m.HoldTransitions()
		defer release()
		admin.do("open node5", chromedp.Click(`#rows .row[data-node="node5"] .c-id button`), chromedp.WaitVisible(`#node-actions button[data-reset="GracefulShutdown"]`))
		admin.waitJS("node5's view", `document.getElementById('node-title').textContent === 'node5'`)
		admin.click("press Soft off", `#node-actions button[data-reset="GracefulShutdown"]`)
		admin.waitJS("the soft off Running", `document.querySelector('#node-tasks li[data-state="Running"]') !== null`)
		admin.click("press On", `#node-actions button[data-reset="On"]`)
		admin.waitJS("the refusal said", `document.getElementById('message').textContent.startsWith('On on node5:')`)
		admin.waitJS("one refusal in the summary", `document.getElementById('sum-refused').textContent === '1'`)
		admin.shot("refused")
		release()
		admin.waitJS("node5 Off", rowField("node5", "c-power")+` === 'Off'`)
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
		// By keyboard: Escape closes the node view and gives the focus
		// back to the node's row; Enter opens a node.
		viewer.do("Escape", chromedp.KeyEvent(kb.Escape))
		viewer.waitJS("the node view closed, focus on node2", `document.getElementById('node').hidden && document.activeElement.closest('.row').dataset.node === 'node2'`)
		viewer.do("focus node3, Enter", chromedp.Focus(`#rows .row[data-node="node3"] .c-id button`), chromedp.KeyEvent(kb.Enter))
		viewer.waitJS("node3's view", `!document.getElementById('node').hidden && document.getElementById('node-title').textContent === 'node3'`)
		// Log out ends the session: its token is refused afterwards.
		token := eval[string](viewer, `sessionStorage.getItem('fishgate.token')`)
		viewer.do("log out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-user"))
		if st, _, b := do(t, http.MethodGet, env.url+"/redfish/v1/Systems", nil, map[string]string{"X-Auth-Token": token}); st != http.StatusUnauthorized {
			t.Errorf("the session's token after Log out: %d, want 401: %s", st, b)
		}
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
		admin.set("#f-sort", "power")
		admin.waitJS("sorted by power state, Off first", `(() => { const p = [...document.querySelectorAll('#rows .row:not([hidden]) .c-power')].map((c) => c.textContent);
			return p.length === 6 && p.join() === [...p].sort().join() && p[0] === 'Off' && p[5] === 'On'; })()`)
		admin.set("#f-sort", "id")
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

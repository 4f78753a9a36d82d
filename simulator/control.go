package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// NodeView is what the control API says about a node: its Status and where
// its Redfish service is.
type NodeView struct {
	Status
	RedfishURL string `json:"RedfishURL"`
	SystemPath string `json:"SystemPath"`
	AMTURL     string `json:"AMTURL,omitempty"`   // base URL of the AMT front (WS-Man at /wsman), if any
	IPMIAddr   string `json:"IPMIAddr,omitempty"` // UDP address of the IPMI front, if any
}

func viewOf(n *Node) NodeView {
	return NodeView{Status: n.machine.Status(), RedfishURL: n.url, SystemPath: n.SystemPath(), AMTURL: n.AMTURL(), IPMIAddr: n.IPMIAddr()}
}

// ControlHandler returns the fleet's control/status API, JSON over HTTP:
//
//	GET  /nodes               → [NodeView, ...] sorted by id
//	GET  /nodes/{id}          → NodeView (Status + RedfishURL + SystemPath [+ AMTURL] [+ IPMIAddr])
//	PUT  /nodes/{id}/faults   Faults JSON → 200 + NodeView; replaces all faults
//	PUT  /nodes/{id}/power    {"PowerState":"On"|"Off"} → 200 + NodeView (setup jump)
//	PUT  /nodes/{id}/latency  {"CommandLatency":"3s"} → 200 + NodeView; how long the BMC
//	                          takes to answer power commands from now on (a Go duration
//	                          string or integer nanoseconds)
//
// Errors are {"error": "..."} with 400 (bad body), 404 (unknown node or
// path) or 405 (method, with Allow).
func (f *Fleet) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/nodes", ctlMethods{"GET": func(w http.ResponseWriter, r *http.Request) {
		nodes := f.Nodes()
		views := make([]NodeView, len(nodes))
		for i, n := range nodes {
			views[i] = viewOf(n)
		}
		writeControl(w, http.StatusOK, views)
	}})
	mux.Handle("/nodes/{id}", ctlMethods{"GET": f.withNode(func(w http.ResponseWriter, r *http.Request, n *Node) {
		writeControl(w, http.StatusOK, viewOf(n))
	})})
	mux.Handle("/nodes/{id}/faults", ctlMethods{"PUT": f.withNode(func(w http.ResponseWriter, r *http.Request, n *Node) {
		var faults Faults
		if !decodeControl(w, r, &faults) {
			return
		}
		if err := faults.validate(); err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		n.machine.SetFaults(faults)
		writeControl(w, http.StatusOK, viewOf(n))
	})})
	mux.Handle("/nodes/{id}/power", ctlMethods{"PUT": f.withNode(func(w http.ResponseWriter, r *http.Request, n *Node) {
		var body struct {
			PowerState *string `json:"PowerState"`
		}
		if !decodeControl(w, r, &body) {
			return
		}
		if body.PowerState == nil || (*body.PowerState != PowerOn && *body.PowerState != PowerOff) {
			controlError(w, http.StatusBadRequest, `want {"PowerState": "On"} or {"PowerState": "Off"}`)
			return
		}
		n.machine.SetPower(*body.PowerState)
		writeControl(w, http.StatusOK, viewOf(n))
	})})
	mux.Handle("/nodes/{id}/latency", ctlMethods{"PUT": f.withNode(func(w http.ResponseWriter, r *http.Request, n *Node) {
		var body struct {
			CommandLatency *jsonDuration `json:"CommandLatency"`
		}
		if !decodeControl(w, r, &body) {
			return
		}
		if body.CommandLatency == nil || *body.CommandLatency < 0 {
			controlError(w, http.StatusBadRequest, `want {"CommandLatency": "<duration>"}, not negative`)
			return
		}
		n.machine.SetCommandLatency(time.Duration(*body.CommandLatency))
		writeControl(w, http.StatusOK, viewOf(n))
	})})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		controlError(w, http.StatusNotFound, "no such path: "+r.URL.Path)
	})
	return mux
}

// withNode looks up the {id} path value, answering 404 if there is no such
// node.
func (f *Fleet) withNode(h func(http.ResponseWriter, *http.Request, *Node)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		n, ok := f.Node(id)
		if !ok {
			controlError(w, http.StatusNotFound, fmt.Sprintf("no node %q", id))
			return
		}
		h(w, r, n)
	}
}

// ctlMethods dispatches on the HTTP method with JSON 405s.
type ctlMethods map[string]http.HandlerFunc

func (ms ctlMethods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := ms[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = ms[http.MethodGet]
	}
	if !ok {
		allow := strings.Join(slices.Sorted(maps.Keys(ms)), ", ")
		w.Header().Set("Allow", allow)
		controlError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed; allowed: %s", r.Method, allow))
		return
	}
	h(w, r)
}

// decodeControl reads one JSON value, refusing unknown fields and trailing
// data; on failure it has answered 400.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		controlError(w, http.StatusBadRequest, "reading body: "+err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		controlError(w, http.StatusBadRequest, "bad JSON body: trailing data after the value")
		return false
	}
	return true
}

func controlError(w http.ResponseWriter, status int, msg string) {
	writeControl(w, status, map[string]string{"error": msg})
}

func writeControl(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

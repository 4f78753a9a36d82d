package proxy

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials of the fake BMC, and of the gateway's client: the latter must
// never reach the BMC.
const (
	bmcUser, bmcPassword = "bmc-admin", "bmc-s3cret"
	gwUser, gwPassword   = "gw-user", "gw-s3cret"
	gwToken              = "gw-session-token-123"
	gwCookie             = "gwsession=gw-cookie-456"
	biosETag             = `"bios-etag-1"`
)

// seen is one request as the fake BMC received it.
type seen struct {
	Method, RawPath, Path, RawQuery string
	Header                          http.Header
	Body                            string
}

// fakeBMC is a small Redfish service (System "1", Manager "BMC", Chassis "1")
// that demands Basic auth with the BMC's account and records what it saw.
type fakeBMC struct {
	t   *testing.T
	srv *httptest.Server

	mu   sync.Mutex
	reqs []seen

	// hold, when set before the requests, makes GET .../Sensors/Held send
	// half its body and wait until it is closed.
	hold chan struct{}
}

func newFakeBMC(t *testing.T, tls bool) *fakeBMC {
	t.Helper()
	b := &fakeBMC{t: t}
	if tls {
		b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
		b.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes the strict client fails on purpose
		b.srv.StartTLS()
	} else {
		b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	}
	t.Cleanup(b.srv.Close)
	return b
}

func (b *fakeBMC) URL() string { return b.srv.URL }

// requests returns a copy of what the BMC received so far.
func (b *fakeBMC) requests() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]seen(nil), b.reqs...)
}

// last returns the last request the BMC received; it fails the test if none.
func (b *fakeBMC) last() seen {
	b.t.Helper()
	r := b.requests()
	if len(r) == 0 {
		b.t.Fatal("the BMC received no request")
	}
	return r[len(r)-1]
}

func (b *fakeBMC) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	b.mu.Lock()
	b.reqs = append(b.reqs, seen{Method: r.Method, RawPath: r.URL.EscapedPath(), Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
	b.mu.Unlock()

	// Nothing of the gateway's client credentials may arrive here.
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, gwPassword) || strings.Contains(v, gwToken) || strings.Contains(v, "gw-cookie") || strings.Contains(v, gwUser) ||
				strings.Contains(v, base64.StdEncoding.EncodeToString([]byte(gwUser+":"+gwPassword))) {
				b.t.Errorf("BMC received the gateway client's credentials in %s: %q", k, v)
			}
		}
	}
	if r.Header.Get("X-Auth-Token") != "" || r.Header.Get("Cookie") != "" {
		b.t.Errorf("BMC received X-Auth-Token %q / Cookie %q", r.Header.Get("X-Auth-Token"), r.Header.Get("Cookie"))
	}
	if u, pw, ok := r.BasicAuth(); !ok || u != bmcUser || pw != bmcPassword {
		w.Header().Set("WWW-Authenticate", `Basic realm="bmc"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error":{"code":"Base.1.0.NoValidSession","message":"no"}}`)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: "bmcsession", Value: "bmc-cookie-789"})
	w.Header().Set("X-Auth-Token", "bmc-token-789")

	origin := "http://" + r.Host
	if r.TLS != nil {
		origin = "https://" + r.Host
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet // the server drops the body
	}
	switch key := method + " " + r.URL.EscapedPath(); key {
	case "GET /redfish/v1/Systems/1/Bios", "GET /redfish/v1/Systems/1/Bios/":
		w.Header().Set("ETag", biosETag)
		w.Header().Set("Link", `</redfish/v1/SchemaStore/en/Bios.json>; rel=describedby, </redfish/v1/Systems/1/Bios/Settings>; rel=settings`)
		b.json(w, r, http.StatusOK, `{
  "@odata.id": "/redfish/v1/Systems/1/Bios",
  "@odata.type": "#Bios.v1_2_0.Bios",
  "@odata.context": "/redfish/v1/$metadata#Bios.Bios",
  "Id": "BIOS",
  "Name": "BIOS Configuration",
  "Description": "See /redfish/v1/Systems/1/Bios for details",
  "Attributes": {"BootMode": "Uefi", "ProcCores": 9007199254740993, "Path": "/redfish/v1/Systems/10"},
  "@Redfish.Settings": {"SettingsObject": {"@odata.id": "/redfish/v1/Systems/1/Bios/Settings"}},
  "Actions": {
    "#Bios.ResetBios": {"target": "/redfish/v1/Systems/1/Bios/Actions/Bios.ResetBios"},
    "#Bios.ChangePassword": {"target": "`+origin+`/redfish/v1/Systems/1/Bios/Actions/Bios.ChangePassword", "@Redfish.ActionInfo": "/redfish/v1/Systems/1/Bios/ChangePasswordActionInfo"}
  },
  "Links": {"ActiveSoftwareImage": {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory/BIOS"}}
}`)
	case "PATCH /redfish/v1/Systems/1/Bios/Settings":
		if im := r.Header.Get("If-Match"); im != "" && im != biosETag {
			b.json(w, r, http.StatusPreconditionFailed, `{"error":{"code":"Base.1.22.PreconditionFailed","message":"etag"}}`)
			return
		}
		w.Header().Set("Location", origin+"/redfish/v1/Managers/BMC/Jobs/JID_1")
		b.json(w, r, http.StatusAccepted, `{"@odata.id":"/redfish/v1/Managers/BMC/Jobs/JID_1","JobState":"Scheduled"}`)
	case "POST /redfish/v1/Systems/1/Bios/Actions/Bios.ResetBios":
		w.Header().Set("Location", "/redfish/v1/TaskService/Tasks/3")
		w.WriteHeader(http.StatusAccepted)
	case "GET /redfish/v1/Systems/1/EthernetInterfaces":
		b.json(w, r, http.StatusOK, `{"@odata.id":"/redfish/v1/Systems/1/EthernetInterfaces","@odata.type":"#EthernetInterfaceCollection.EthernetInterfaceCollection","Name":"Ethernet Interfaces",
"Members":[{"@odata.id":"/redfish/v1/Systems/1/EthernetInterfaces/NIC.1"}],"Members@odata.count":2,
"Members@odata.nextLink":"/redfish/v1/Systems/1/EthernetInterfaces?$skip=1"}`)
	case "GET /redfish/v1/Systems/1/EthernetInterfaces/NIC.1":
		b.json(w, r, http.StatusOK, `{"@odata.id":"\/redfish\/v1\/Systems\/1\/EthernetInterfaces\/NIC.1","@odata.type":"#EthernetInterface.v1_6_0.EthernetInterface","Id":"NIC.1","Name":"NIC 1","MACAddress":"aa:bb:cc:dd:ee:ff",
"Links":{"Chassis":{"@odata.id":"/redfish/v1/Chassis/1"},"Endpoints":[{"@odata.id":"/redfish/v1/Fabrics/1/Endpoints/NIC.1"}]}}`)
	case "GET /redfish/v1/Managers/BMC/NetworkProtocol":
		w.Header().Set("Cache-Control", "no-store")
		b.json(w, r, http.StatusOK, `{"@odata.id":"/redfish/v1/Managers/BMC/NetworkProtocol","@odata.type":"#ManagerNetworkProtocol.v1_5_0.ManagerNetworkProtocol","Id":"NetworkProtocol","Name":"Manager Network Protocol",
"HTTPS":{"Port":443,"ProtocolEnabled":true},"HTTPS@Redfish.AllowableValues":[],"Links":{"ManagedSystem":{"@odata.id":"/redfish/v1/Systems/1/"}}}`)
	case "POST /redfish/v1/Managers/BMC/Jobs":
		w.Header().Set("Location", "/redfish/v1/Managers/BMC/Jobs/JID_2")
		b.json(w, r, http.StatusCreated, `{"@odata.id":"/redfish/v1/Managers/BMC/Jobs/JID_2"}`)
	case "GET /redfish/v1/Chassis/1/Power":
		b.json(w, r, http.StatusOK, `{"@odata.id":"/redfish/v1/Chassis/1/Power","PowerControl":[{"@odata.id":"/redfish/v1/Chassis/1/Power#/PowerControl/0","PowerConsumedWatts":120}]}`)
	case "GET /redfish/v1/Chassis/1/Sensors/Big":
		// A body of about 1 MiB, above the limit the tests set.
		var sb strings.Builder
		sb.WriteString(`{"@odata.id":"/redfish/v1/Chassis/1/Sensors/Big","Data":[`)
		for i := 0; i < 20000; i++ {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"@odata.id":"/redfish/v1/Chassis/1/Sensors/Big#/Data/%d","v":"%040d"}`, i, i)
		}
		sb.WriteString(`]}`)
		b.json(w, r, http.StatusOK, sb.String())
	case "GET /redfish/v1/Chassis/1/Sensors/BigCL":
		// About 1.4 MiB with its Content-Length, not compressed.
		body := bigJSON("/redfish/v1/Chassis/1/Sensors/BigCL", 20000)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		io.WriteString(w, body)
	case "GET /redfish/v1/Chassis/1/Sensors/Mid":
		b.json(w, r, http.StatusOK, bigJSON("/redfish/v1/Chassis/1/Sensors/Mid", 5000)) // about 350 KiB
	case "GET /redfish/v1/Chassis/1/Sensors/Held":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"@odata.id":"/redfish/v1/Chassis/1/Sensors/Held","Pad":"`)
		w.(http.Flusher).Flush()
		select {
		case <-b.hold:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, `x"}`)
	case "GET /redfish/v1/Managers/BMC/SerialConsole/Big":
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("/redfish/v1/Systems/1\n", 100000)) // about 2.2 MB
	case "GET /redfish/v1/Managers/BMC/SerialConsole/Log":
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "boot: see /redfish/v1/Systems/1\n\"/redfish/v1/Systems/1\"")
	case "GET /redfish/v1/Systems/1/NoType":
		w.Header()["Content-Type"] = nil // no Content-Type, and no sniffing either
		io.WriteString(w, `{"@odata.id":"/redfish/v1/Systems/1/NoType"}`)
	case "GET /redfish/v1/Systems/1/Slow":
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		b.json(w, r, http.StatusOK, `{}`)
	default:
		if strings.HasPrefix(key, "GET /redfish/v1/Systems/1/Echo") {
			b.json(w, r, http.StatusOK, `{"@odata.id":"/redfish/v1/Systems/1/Echo"}`)
			return
		}
		if r.Method == http.MethodPatch || r.Method == http.MethodPost || r.Method == http.MethodPut {
			// Echo the body back, so tests see what the BMC received.
			if !json.Valid(body) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			b.json(w, r, http.StatusOK, string(body))
			return
		}
		b.json(w, r, http.StatusNotFound, `{"error":{"code":"Base.1.22.ResourceMissingAtURI","message":"`+r.URL.Path+`"}}`)
	}
}

// bigJSON is a JSON object of n links below id.
func bigJSON(id string, n int) string {
	var sb strings.Builder
	sb.WriteString(`{"@odata.id":"` + id + `","Data":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"@odata.id":"%s#/Data/%d","v":"%040d"}`, id, i, i)
	}
	sb.WriteString(`]}`)
	return sb.String()
}

// json writes a JSON body, gzip-compressed when the client accepts it (the
// gateway's transport does, on its own).
func (b *fakeBMC) json(w http.ResponseWriter, r *http.Request, status int, body string) {
	if !json.Valid([]byte(body)) {
		b.t.Errorf("fake BMC: invalid JSON for %s", r.URL.Path)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("OData-Version", "4.0")
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		zw := gzip.NewWriter(w)
		io.WriteString(zw, body)
		zw.Close()
		return
	}
	w.WriteHeader(status)
	io.WriteString(w, body)
}

package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/fishgate/fishgate/internal/redact"
	"github.com/fishgate/fishgate/schemas"
)

// writeError answers a Redfish error response (DSP0266 §9.7) built from Base
// registry messages; detail, when set, replaces the top-level message.
//
// The texts never show a BMC's address, URLs or credentials (they may come
// from a BMC error: redact.Text); the full error is in the gateway's log.
func writeError(w http.ResponseWriter, r *http.Request, status int, detail string, msgs ...schemas.Message) {
	for i := range msgs {
		msgs[i].Message = redact.Text(msgs[i].Message)
	}
	body := schemas.NewError(msgs...)
	if detail != "" {
		body.Error.Message = redact.Text(detail)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("OData-Version", "4.0")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to do about it
}

// writeUnavailable answers 503 ServiceTemporarilyUnavailable with
// Retry-After: the BMC cannot be reached now. detail names the problem; it
// is added to the message of the MessageId as well, since clients such as
// sushy report that one rather than the top-level message.
func writeUnavailable(w http.ResponseWriter, r *http.Request, retryAfter int, detail string) {
	msg := schemas.Base(schemas.MsgServiceTemporarilyUnavailable, strconv.Itoa(retryAfter))
	msg.Message += " " + detail
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	writeError(w, r, http.StatusServiceUnavailable, detail, msg)
}

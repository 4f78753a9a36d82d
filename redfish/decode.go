package redfish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// readBody reads the request body up to limit bytes; a larger body is a 413
// PayloadTooLarge.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, schemas.Base("PayloadTooLarge"))
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	var tooBig *http.MaxBytesError // a tighter limit of requestChecks (unauthenticated)
	if errors.As(err, &tooBig) {
		return nil, newError(http.StatusRequestEntityTooLarge, schemas.Base("PayloadTooLarge")).
			withDetail("the request body exceeds " + strconv.FormatInt(tooBig.Limit, 10) + " bytes")
	}
	if err != nil {
		return nil, newError(http.StatusBadRequest, schemas.Base("MalformedJSON")).withDetail("reading request body: " + err.Error())
	}
	if int64(len(b)) > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, schemas.Base("PayloadTooLarge"))
	}
	return b, nil
}

// decodeKind says whether a body is a resource update (PATCH/POST of a
// resource) or an action's parameters: the Base registry has distinct
// messages for each.
type decodeKind struct {
	action string // "" for a resource; else e.g. "ComputerSystem.Reset"
}

// decodeStrict decodes a JSON object into dst, refusing (DSP0266 §8.2)
// malformed JSON, trailing data, unknown properties and values of the wrong
// type, each with its Base registry message.
func decodeStrict(body []byte, dst any, k decodeKind) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return newError(http.StatusBadRequest, schemas.Base("MalformedJSON")).withDetail("the request body is empty")
	}
	var generic any
	if err := json.Unmarshal(body, &generic); err != nil {
		return newError(http.StatusBadRequest, schemas.Base("MalformedJSON")).withDetail("malformed JSON: " + err.Error())
	}
	if _, ok := generic.(map[string]any); !ok {
		return newError(http.StatusBadRequest, schemas.Base("MalformedJSON")).withDetail("the request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(dst)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		val := renderValue(lookup(generic, te.Field))
		if k.action != "" {
			return newError(http.StatusBadRequest, schemas.Base("ActionParameterValueTypeError", val, te.Field, k.action))
		}
		return newError(http.StatusBadRequest, schemas.Base("PropertyValueTypeError", val, te.Field))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		if k.action != "" {
			return newError(http.StatusBadRequest, schemas.Base("ActionParameterUnknown", k.action, name))
		}
		return newError(http.StatusBadRequest, schemas.Base("PropertyUnknown", name))
	}
	return newError(http.StatusBadRequest, schemas.Base("MalformedJSON")).withDetail("malformed request: " + err.Error())
}

// lookup follows a dotted path ("Boot.BootSourceOverrideTarget") in a
// decoded JSON value.
func lookup(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		v = m[p]
	}
	return v
}

func renderValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

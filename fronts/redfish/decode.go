package redfish

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
)

// readBody reads the request body up to limit bytes; a larger body is a 413
// PayloadTooLarge.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, schemas.Base(schemas.MsgPayloadTooLarge))
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	var tooBig *http.MaxBytesError // a tighter limit of requestChecks (unauthenticated)
	if errors.As(err, &tooBig) {
		return nil, newError(http.StatusRequestEntityTooLarge, schemas.Base(schemas.MsgPayloadTooLarge)).
			withDetail("the request body exceeds " + strconv.FormatInt(tooBig.Limit, 10) + " bytes")
	}
	if err != nil {
		return nil, newError(http.StatusBadRequest, schemas.Base(schemas.MsgMalformedJSON)).withDetail("reading request body: " + err.Error())
	}
	if int64(len(b)) > limit {
		return nil, newError(http.StatusRequestEntityTooLarge, schemas.Base(schemas.MsgPayloadTooLarge))
	}
	return b, nil
}

// decodeKind says whether a body is a resource update (PATCH/POST of a
// resource) or an action's parameters: the Base registry has distinct
// messages for each.
type decodeKind struct {
	action string // "" for a resource; else e.g. "ComputerSystem.Reset"
	// patch: a PATCH of a resource, where a body of nothing but OData
	// annotations changes nothing (400 NoOperation).
	patch bool
}

// decodeStrict decodes a JSON object into dst, refusing (DSP0266 §8.2)
// malformed JSON, trailing data, duplicate properties, unknown properties
// and values of the wrong type, each with its Base registry message.
// Property names are matched exactly: Redfish names are case-sensitive,
// and encoding/json's case-insensitive matching would let "RESETTYPE"
// stand for (or, coming last, override) "ResetType".
func decodeStrict(body []byte, dst any, k decodeKind) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgMalformedJSON)).withDetail("the request body is empty")
	}
	var generic any
	if err := json.Unmarshal(body, &generic); err != nil {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgMalformedJSON)).withDetail("malformed JSON: " + err.Error())
	}
	if _, ok := generic.(map[string]any); !ok {
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgMalformedJSON)).withDetail("the request body must be a JSON object")
	}
	if dup := duplicateName(body); dup != "" {
		if k.action != "" {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterDuplicate, k.action, dup))
		}
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyDuplicate, dup))
	}
	if m := generic.(map[string]any); k.action == "" && hasODataAnnotation(m) {
		// OData annotations a client sends back from a GET (@odata.id,
		// @odata.etag, ...) are ignored (DSP0266).
		if !stripODataAnnotations(m) && k.patch {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgNoOperation))
		}
		body, _ = json.Marshal(m)
		generic = m
	}
	if name := unknownName(generic, reflect.TypeOf(dst)); name != "" {
		if k.action != "" {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterUnknown, k.action, name))
		}
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyUnknown, name))
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
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterValueTypeError, val, te.Field, k.action))
		}
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyValueTypeError, val, te.Field))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		if k.action != "" {
			return newError(http.StatusBadRequest, schemas.Base(schemas.MsgActionParameterUnknown, k.action, name))
		}
		return newError(http.StatusBadRequest, schemas.Base(schemas.MsgPropertyUnknown, name))
	}
	return newError(http.StatusBadRequest, schemas.Base(schemas.MsgMalformedJSON)).withDetail("malformed request: " + err.Error())
}

// duplicateName is the dotted path of the first property that appears
// twice in one object of a well-formed JSON body, or "".
func duplicateName(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	dup, _ := walkDuplicates(dec, "")
	return dup
}

func walkDuplicates(dec *json.Decoder, path string) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return "", err
			}
			name, _ := kt.(string)
			p := name
			if path != "" {
				p = path + "." + name
			}
			if seen[name] {
				return p, nil
			}
			seen[name] = true
			if dup, err := walkDuplicates(dec, p); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if dup, err := walkDuplicates(dec, path); dup != "" || err != nil {
				return dup, err
			}
		}
		_, err = dec.Token()
	}
	return "", err
}

// unknownName is the first property name (sorted, per object) of the
// decoded JSON value v that is not exactly the JSON name of a field of t,
// or "". Maps take any name; interfaces, json.RawMessage and custom
// unmarshalers take any value.
func unknownName(v any, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
		return ""
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return "" // a type error, found by the decoder
		}
		fields := jsonFields(t)
		for _, name := range slices.Sorted(maps.Keys(m)) {
			ft, ok := fields[name]
			if !ok {
				return name
			}
			if n := unknownName(m[name], ft); n != "" {
				return n
			}
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for _, name := range slices.Sorted(maps.Keys(m)) {
				if n := unknownName(m[name], t.Elem()); n != "" {
					return n
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if a, ok := v.([]any); ok {
			for _, x := range a {
				if n := unknownName(x, t.Elem()); n != "" {
					return n
				}
			}
		}
	}
	return ""
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// fieldCache maps a struct type to its fields by exact JSON name.
var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// jsonFields are the fields encoding/json would decode into, by their
// exact JSON names (embedded structs without a name are flattened).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for n, t := range jsonFields(et) {
					if _, shadowed := out[n]; !shadowed {
						out[n] = t
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = ft
	}
	fieldCache.Store(t, out)
	return out
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

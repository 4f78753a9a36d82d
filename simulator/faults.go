package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Faults injected into a machine (docs/architecture.md#simulator; semantics
// in the package doc). Settable at any time.
//
// JSON: Hang and RefuseOnWithin are written as integer nanoseconds and read
// from integer nanoseconds or a Go duration string ("250ms"). Unknown fields
// are an error.
type Faults struct {
	FailFirst          int           `json:"FailFirst"`          // the next N power commands fail (the counter decrements)
	Ignore             bool          `json:"Ignore"`             // accept power commands but do nothing
	Hang               time.Duration `json:"Hang"`               // extra delay before answering each power command
	RefuseOnWithin     time.Duration `json:"RefuseOnWithin"`     // refuse power-on within this long after a power-off
	NeverFinishSoftOff bool          `json:"NeverFinishSoftOff"` // the OS ignores ACPI: soft offs from On leave it On
}

// UnmarshalJSON reads Faults, accepting durations as nanoseconds or as Go
// duration strings, and rejecting unknown fields.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var in struct {
		FailFirst          int          `json:"FailFirst"`
		Ignore             bool         `json:"Ignore"`
		Hang               jsonDuration `json:"Hang"`
		RefuseOnWithin     jsonDuration `json:"RefuseOnWithin"`
		NeverFinishSoftOff bool         `json:"NeverFinishSoftOff"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	*f = Faults{
		FailFirst:          in.FailFirst,
		Ignore:             in.Ignore,
		Hang:               time.Duration(in.Hang),
		RefuseOnWithin:     time.Duration(in.RefuseOnWithin),
		NeverFinishSoftOff: in.NeverFinishSoftOff,
	}
	return nil
}

// validate rejects values that have no meaning.
func (f Faults) validate() error {
	var errs []error
	if f.FailFirst < 0 {
		errs = append(errs, fmt.Errorf("FailFirst %d is negative", f.FailFirst))
	}
	if f.Hang < 0 {
		errs = append(errs, fmt.Errorf("Hang %v is negative", f.Hang))
	}
	if f.RefuseOnWithin < 0 {
		errs = append(errs, fmt.Errorf("RefuseOnWithin %v is negative", f.RefuseOnWithin))
	}
	return errors.Join(errs...)
}

// jsonDuration is a time.Duration read from nanoseconds or a duration string.
type jsonDuration time.Duration

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = 0
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = jsonDuration(v)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("duration %s: want integer nanoseconds or a string like \"1.5s\"", b)
	}
	*d = jsonDuration(n)
	return nil
}

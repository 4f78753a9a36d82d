// Package schemas holds the Redfish vocabulary fishgate speaks: the power
// and reset enumerations, the resource models the gateway renders, and the
// Base message registry entries its errors are built from.
//
// Models are small serving structs of our own (gofish's structs are for
// reading); each names the versioned @odata.type it conforms to (DSP0266 §9).
package schemas

package redfish

import (
	"errors"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/fishgate/fishgate/schemas"
	"github.com/fishgate/fishgate/serializer"
)

const resetAction = "ComputerSystem.Reset"

// defaultBootTargets are offered when the BMC did not say which it supports.
var defaultBootTargets = []string{"None", "Pxe", "Hdd", "Cd", "BiosSetup", "Usb"}

func (s *Server) getSystems(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, id := range sc.nodeIDs(s.nodes) {
		m = append(m, schemas.Link{ODataID: sc.url("/Systems/" + id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/Systems"), schemas.TypeComputerSystemColl, "Computer System Collection", m))
}

func powerPtr(p schemas.PowerState) *schemas.PowerState {
	if p == schemas.PowerUnknown {
		return nil
	}
	return &p
}

func bootTargets(v serializer.View) []string {
	if len(v.Caps.BootTargets) > 0 {
		return v.Caps.BootTargets
	}
	return defaultBootTargets
}

func bootModes(v serializer.View) []string {
	if len(v.Caps.BootModes) > 0 {
		return v.Caps.BootModes
	}
	return schemas.BootModes
}

// resetTypes is what the Reset action advertises: what the node's BMC
// supports (sushy refuses client-side anything not listed).
func resetTypes(v serializer.View) []schemas.ResetType {
	if v.CapsKnown {
		return v.Caps.ResetTypes
	}
	return []schemas.ResetType{}
}

func renderSystem(sc scope, v serializer.View) schemas.ComputerSystem {
	boot := schemas.Boot{
		BootSourceOverrideTarget:         v.Boot.Target,
		BootSourceOverrideTargetAllowed:  bootTargets(v),
		BootSourceOverrideEnabled:        v.Boot.Enabled,
		BootSourceOverrideEnabledAllowed: schemas.BootEnabledValues,
		BootSourceOverrideMode:           v.Boot.Mode,
		BootSourceOverrideModeAllowed:    bootModes(v),
	}
	if boot.BootSourceOverrideTarget == "" {
		boot.BootSourceOverrideTarget = "None"
	}
	if boot.BootSourceOverrideEnabled == "" {
		boot.BootSourceOverrideEnabled = "Disabled"
	}
	sys := schemas.ComputerSystem{
		Resource:   schemas.Resource{ODataID: sc.url("/Systems/" + v.ID), ODataType: schemas.TypeComputerSystem, ID: v.ID, Name: v.Name},
		SystemType: "Physical",
		PowerState: powerPtr(v.PowerState),
		Boot:       boot,
		Status:     schemas.Status{State: "Enabled", Health: v.Health},
		Links: schemas.SystemLinks{
			ManagedBy: []schemas.Link{{ODataID: sc.url("/Managers/" + v.ID)}},
			Chassis:   []schemas.Link{{ODataID: sc.url("/Chassis/" + v.ID)}},
		},
		Actions: schemas.SystemActions{Reset: schemas.ResetAction{
			Target:          sc.url("/Systems/" + v.ID + "/Actions/" + resetAction),
			AllowableResets: resetTypes(v),
		}},
	}
	if v.LastError != "" {
		sys.Oem = map[string]any{"Fishgate": map[string]any{"LastError": v.LastError}}
	}
	return sys
}

func (s *Server) getSystem(c echo.Context) error {
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	return send(c, http.StatusOK, renderSystem(scopeOf(c), v))
}

// systemPatch is the writable part of a ComputerSystem.
type systemPatch struct {
	Boot *struct {
		BootSourceOverrideTarget  *string `json:"BootSourceOverrideTarget"`
		BootSourceOverrideEnabled *string `json:"BootSourceOverrideEnabled"`
		BootSourceOverrideMode    *string `json:"BootSourceOverrideMode"`
	} `json:"Boot"`
}

func (s *Server) patchSystem(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var p systemPatch
	if err := decodeStrict(body, &p, decodeKind{}); err != nil {
		return err
	}
	if err := ifMatch(c, etagOfValue(renderSystem(sc, v))); err != nil {
		return err
	}
	if p.Boot == nil {
		return newError(http.StatusBadRequest, schemas.Base("PropertyMissing", "Boot"))
	}
	var b schemas.BootOverride
	check := func(val *string, name string, allowed []string, dst *string) error {
		if val == nil {
			return nil
		}
		if !slices.Contains(allowed, *val) {
			return newError(http.StatusBadRequest, schemas.Base("PropertyValueNotInList", *val, name))
		}
		*dst = *val
		return nil
	}
	if err := errors.Join(
		check(p.Boot.BootSourceOverrideTarget, "BootSourceOverrideTarget", bootTargets(v), &b.Target),
		check(p.Boot.BootSourceOverrideEnabled, "BootSourceOverrideEnabled", schemas.BootEnabledValues, &b.Enabled),
		check(p.Boot.BootSourceOverrideMode, "BootSourceOverrideMode", bootModes(v), &b.Mode),
	); err != nil {
		var ae *apiError
		errors.As(err, &ae)
		return ae
	}
	if b == (schemas.BootOverride{}) {
		return newError(http.StatusBadRequest, schemas.Base("PropertyMissing", "Boot/BootSourceOverrideTarget"))
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	if err := s.nodes.SetBoot(ctx, v.ID, b); err != nil {
		return s.nodeError(err, v.ID)
	}
	v, err = s.nodes.View(v.ID)
	if err != nil {
		return notFound("ComputerSystem", v.ID)
	}
	return send(c, http.StatusOK, renderSystem(sc, v))
}

func (s *Server) postReset(c echo.Context) error {
	if err := canOperate(c); err != nil {
		return err
	}
	v, err := s.view(c, "ComputerSystem")
	if err != nil {
		return err
	}
	body, err := readBody(c, s.maxBody)
	if err != nil {
		return err
	}
	var p struct {
		ResetType *string `json:"ResetType"`
	}
	if err := decodeStrict(body, &p, decodeKind{action: resetAction}); err != nil {
		return err
	}
	if p.ResetType == nil {
		return newError(http.StatusBadRequest, schemas.Base("ActionParameterMissing", resetAction, "ResetType"))
	}
	rt, err := schemas.ParseResetType(*p.ResetType)
	if err != nil || !slices.Contains(resetTypes(v), rt) {
		return newError(http.StatusBadRequest, schemas.Base("ActionParameterValueNotInList", *p.ResetType, "ResetType", resetAction))
	}
	ctx, cancel := withTimeout(c)
	defer cancel()
	if err := s.nodes.Reset(ctx, v.ID, rt); err != nil {
		if errors.Is(err, serializer.ErrUnsupportedReset) {
			return newError(http.StatusBadRequest, schemas.Base("ActionParameterValueNotInList", *p.ResetType, "ResetType", resetAction))
		}
		return s.nodeError(err, v.ID)
	}
	s.log.Info("reset sent", "node", v.ID, "reset", rt, "user", principalOf(c).User)
	return c.NoContent(http.StatusNoContent)
}

// nodeError maps a serializer error to a Redfish error: the BMC failing is
// a 502 with its text, never a 500.
func (s *Server) nodeError(err error, id string) error {
	switch {
	case errors.Is(err, serializer.ErrNodeNotFound):
		return notFound("ComputerSystem", id)
	case errors.Is(err, serializer.ErrBMC):
		s.log.Warn("BMC call failed", "node", id, "err", err)
		return newError(http.StatusBadGateway, schemas.Base("GeneralError")).withDetail(err.Error())
	}
	return unavailable(5, err.Error())
}

func (s *Server) getManagers(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, id := range sc.nodeIDs(s.nodes) {
		m = append(m, schemas.Link{ODataID: sc.url("/Managers/" + id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/Managers"), schemas.TypeManagerColl, "Manager Collection", m))
}

func (s *Server) getManager(c echo.Context) error {
	v, err := s.view(c, "Manager")
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.Manager{
		Resource:    schemas.Resource{ODataID: sc.url("/Managers/" + v.ID), ODataType: schemas.TypeManager, ID: v.ID, Name: "BMC of " + v.Name},
		ManagerType: "BMC",
		Status:      schemas.Status{State: "Enabled", Health: v.Health},
		Links: schemas.ManagerLinks{
			ManagerForServers: []schemas.Link{{ODataID: sc.url("/Systems/" + v.ID)}},
			ManagerForChassis: []schemas.Link{{ODataID: sc.url("/Chassis/" + v.ID)}},
		},
	})
}

func (s *Server) getChassisCollection(c echo.Context) error {
	sc := scopeOf(c)
	var m []schemas.Link
	for _, id := range sc.nodeIDs(s.nodes) {
		m = append(m, schemas.Link{ODataID: sc.url("/Chassis/" + id)})
	}
	return send(c, http.StatusOK, schemas.NewCollection(sc.url("/Chassis"), schemas.TypeChassisColl, "Chassis Collection", m))
}

func (s *Server) getChassis(c echo.Context) error {
	v, err := s.view(c, "Chassis")
	if err != nil {
		return err
	}
	sc := scopeOf(c)
	return send(c, http.StatusOK, schemas.Chassis{
		Resource:    schemas.Resource{ODataID: sc.url("/Chassis/" + v.ID), ODataType: schemas.TypeChassis, ID: v.ID, Name: "Chassis of " + v.Name},
		ChassisType: "RackMount",
		PowerState:  powerPtr(v.PowerState),
		Status:      schemas.Status{State: "Enabled", Health: v.Health},
		Links: schemas.ChassisLinks{
			ComputerSystems: []schemas.Link{{ODataID: sc.url("/Systems/" + v.ID)}},
			ManagedBy:       []schemas.Link{{ODataID: sc.url("/Managers/" + v.ID)}},
		},
	})
}

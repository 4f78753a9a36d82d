package schemas

// Aggregates: named groups of Systems (Redfish Aggregate v1_0), and their
// bulk power action.

const (
	TypeAggregate     = "#Aggregate.v1_0_3.Aggregate"
	TypeAggregateColl = "#AggregateCollection.AggregateCollection"
)

// Aggregate is a named group of Systems.
type Aggregate struct {
	Resource
	Elements      []Link           `json:"Elements"`
	ElementsCount int              `json:"ElementsCount"`
	Actions       AggregateActions `json:"Actions"`
	Oem           map[string]any   `json:"Oem,omitempty"`
}

// AggregateActions are an Aggregate's actions.
type AggregateActions struct {
	Reset          BulkResetAction `json:"#Aggregate.Reset"`
	AddElements    ActionTarget    `json:"#Aggregate.AddElements"`
	RemoveElements ActionTarget    `json:"#Aggregate.RemoveElements"`
}

// ActionTarget is an action without advertised parameter values.
type ActionTarget struct {
	Target string `json:"target"`
}

// BulkResetAction is Aggregate.Reset and AggregationService.Reset: the
// ResetTypes any node may offer (each node still refuses one it does not).
type BulkResetAction struct {
	Target          string      `json:"target"`
	AllowableResets []ResetType `json:"ResetType@Redfish.AllowableValues"`
}

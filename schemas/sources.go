package schemas

// AggregationSources and ConnectionMethods (AggregationSource v1_5_0,
// ConnectionMethod v1_2_0).
const (
	TypeAggregationSource     = "#AggregationSource.v1_5_0.AggregationSource"
	TypeAggregationSourceColl = "#AggregationSourceCollection.AggregationSourceCollection"
	TypeConnectionMethod      = "#ConnectionMethod.v1_2_0.ConnectionMethod"
	TypeConnectionMethodColl  = "#ConnectionMethodCollection.ConnectionMethodCollection"
)

// AggregationSource is one enrolled BMC. Password is write-only: always
// null when read (AggregationSource schema: "null" on GET).
type AggregationSource struct {
	Resource
	HostName        string                 `json:"HostName"`
	UserName        string                 `json:"UserName"`
	Password        *string                `json:"Password"`
	AggregationType string                 `json:"AggregationType"`
	Status          Status                 `json:"Status"`
	Links           AggregationSourceLinks `json:"Links"`
	Oem             map[string]any         `json:"Oem,omitempty"`
}

// AggregationSourceLinks is AggregationSource.Links.
type AggregationSourceLinks struct {
	ConnectionMethod       *Link  `json:"ConnectionMethod,omitempty"`
	ResourcesAccessed      []Link `json:"ResourcesAccessed"`
	ResourcesAccessedCount int    `json:"ResourcesAccessed@odata.count"`
}

// ConnectionMethod is one way of reaching a BMC.
type ConnectionMethod struct {
	Resource
	ConnectionMethodType    string  `json:"ConnectionMethodType"`
	ConnectionMethodVariant *string `json:"ConnectionMethodVariant"`
}

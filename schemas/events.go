package schemas

// EventService types (DSP0266 §10 "Eventing"; DSP8010 EventService,
// EventDestination and Event schemas).
const (
	TypeEventService         = "#EventService.v1_12_0.EventService"
	TypeEventDestination     = "#EventDestination.v1_16_0.EventDestination"
	TypeEventDestinationColl = "#EventDestinationCollection.EventDestinationCollection"
	TypeEvent                = "#Event.v1_13_0.Event"
)

// EventService is /redfish/v1/EventService (EventService v1_12_0).
type EventService struct {
	Resource
	ServiceEnabled                bool                `json:"ServiceEnabled"`
	DeliveryRetryAttempts         int                 `json:"DeliveryRetryAttempts"`
	DeliveryRetryIntervalSeconds  int                 `json:"DeliveryRetryIntervalSeconds"`
	EventFormatTypes              []string            `json:"EventFormatTypes"`
	RegistryPrefixes              []string            `json:"RegistryPrefixes"`
	ResourceTypes                 []string            `json:"ResourceTypes"`
	ServerSentEventURI            string              `json:"ServerSentEventUri"`
	SSEFilterPropertiesSupported  SSEFilterProperties `json:"SSEFilterPropertiesSupported"`
	SubordinateResourcesSupported bool                `json:"SubordinateResourcesSupported"`
	Subscriptions                 Link                `json:"Subscriptions"`
	Status                        Status              `json:"Status"`
}

// SSEFilterProperties is EventService.SSEFilterPropertiesSupported: the
// properties the SSE stream's $filter understands.
type SSEFilterProperties struct {
	EventFormatType        bool `json:"EventFormatType"`
	MessageID              bool `json:"MessageId"`
	MetricReportDefinition bool `json:"MetricReportDefinition"`
	OriginResource         bool `json:"OriginResource"`
	RegistryPrefix         bool `json:"RegistryPrefix"`
	ResourceType           bool `json:"ResourceType"`
	SubordinateResources   bool `json:"SubordinateResources"`
}

// EventDestination is one push subscription (EventDestination v1_16_0).
// HttpHeaders is always rendered empty: it may hold credentials.
type EventDestination struct {
	Resource
	Destination         string              `json:"Destination"`
	Context             string              `json:"Context"`
	Protocol            string              `json:"Protocol"`
	SubscriptionType    string              `json:"SubscriptionType"`
	EventFormatType     string              `json:"EventFormatType"`
	RegistryPrefixes    []string            `json:"RegistryPrefixes"`
	ResourceTypes       []string            `json:"ResourceTypes"`
	MessageIDs          []string            `json:"MessageIds"`
	OriginResources     []Link              `json:"OriginResources"`
	DeliveryRetryPolicy string              `json:"DeliveryRetryPolicy"`
	HTTPHeaders         []map[string]string `json:"HttpHeaders"`
	Status              Status              `json:"Status"`
}

// Event is the body of an event: POSTed to a subscriber, or the data of one
// SSE event (Event v1_13_0).
type Event struct {
	ODataType   string        `json:"@odata.type"`
	ID          string        `json:"Id"`
	Name        string        `json:"Name"`
	Context     string        `json:"Context,omitempty"`
	Events      []EventRecord `json:"Events"`
	EventsCount int           `json:"Events@odata.count"`
}

// EventRecord is one member of Event.Events. EventType is deprecated but
// still required by the schema; fishgate sends "Other" (subscriptions are
// by RegistryPrefixes and ResourceTypes, DSP0266 §10.3).
type EventRecord struct {
	EventType         string   `json:"EventType"`
	EventID           string   `json:"EventId"`
	EventTimestamp    string   `json:"EventTimestamp"`
	MemberID          string   `json:"MemberId"`
	MessageID         string   `json:"MessageId"`
	Message           string   `json:"Message"`
	MessageArgs       []string `json:"MessageArgs"`
	MessageSeverity   string   `json:"MessageSeverity"`
	Resolution        string   `json:"Resolution,omitempty"`
	OriginOfCondition *Link    `json:"OriginOfCondition,omitempty"`
}

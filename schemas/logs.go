package schemas

import "time"

// Log services (LogService v1_7_0, LogEntry v1_9_0): the gateway's audit
// log and each System's power actions.
const (
	TypeLogService       = "#LogService.v1_7_0.LogService"
	TypeLogServiceColl   = "#LogServiceCollection.LogServiceCollection"
	TypeLogEntry         = "#LogEntry.v1_9_0.LogEntry"
	TypeLogEntryColl     = "#LogEntryCollection.LogEntryCollection"
	TypeGatewayManager   = TypeManager
	gatewayManagerType   = "Service"
	logServiceDateFormat = time.RFC3339
)

// LogService is a log with entries.
type LogService struct {
	Resource
	Description        string `json:"Description"`
	ServiceEnabled     bool   `json:"ServiceEnabled"`
	OverWritePolicy    string `json:"OverWritePolicy"`
	LogEntryType       string `json:"LogEntryType"`
	DateTime           string `json:"DateTime"`
	Entries            Link   `json:"Entries"`
	Status             Status `json:"Status"`
	MaxNumberOfRecords int    `json:"MaxNumberOfRecords,omitempty"`
}

// NewLogService describes the log at id.
func NewLogService(id, name, description string) LogService {
	return LogService{
		Resource:        Resource{ODataID: id, ODataType: TypeLogService, ID: name, Name: name},
		Description:     description,
		ServiceEnabled:  true,
		OverWritePolicy: "WrapsWhenFull",
		LogEntryType:    "Multiple",
		DateTime:        time.Now().UTC().Format(logServiceDateFormat),
		Entries:         Link{ODataID: id + "/Entries"},
		Status:          Status{State: "Enabled", Health: "OK"},
	}
}

// LogEntry is one entry of a log.
type LogEntry struct {
	Resource
	EntryType string `json:"EntryType"`
	Created   string `json:"Created"`
	Severity  string `json:"Severity"`
	Message   string `json:"Message"`
}

// NewLogEntry is entry id of a log.
func NewLogEntry(odataID, id string, created time.Time, severity, message string) LogEntry {
	return LogEntry{
		Resource:  Resource{ODataID: odataID, ODataType: TypeLogEntry, ID: id, Name: "Log entry " + id},
		EntryType: "Oem",
		Created:   created.Format(logServiceDateFormat),
		Severity:  severity,
		Message:   message,
	}
}

// LogEntryCollection is a page of a log's entries, the entries themselves
// expanded, with the link to the next page.
type LogEntryCollection struct {
	ODataID      string     `json:"@odata.id"`
	ODataType    string     `json:"@odata.type"`
	Name         string     `json:"Name"`
	Members      []LogEntry `json:"Members"`
	MembersCount int        `json:"Members@odata.count"`
	NextLink     string     `json:"Members@odata.nextLink,omitempty"`
}

// RedfishType is the collection's @odata.type.
func (c LogEntryCollection) RedfishType() string { return c.ODataType }

// NewLogEntryCollection is one page of entries.
// total is the number of entries of the whole log.
func NewLogEntryCollection(id string, members []LogEntry, total int, next string) LogEntryCollection {
	if members == nil {
		members = []LogEntry{}
	}
	return LogEntryCollection{ODataID: id, ODataType: TypeLogEntryColl, Name: "Log Entries", Members: members, MembersCount: total, NextLink: next}
}

// GatewayManagerResource is the gateway's own Manager (it holds the audit log).
type GatewayManagerResource struct {
	Resource
	ManagerType string `json:"ManagerType"`
	Description string `json:"Description"`
	Status      Status `json:"Status"`
	LogServices Link   `json:"LogServices"`
}

// GatewayManager describes the gateway's Manager at odataID.
func GatewayManager(odataID, id string) GatewayManagerResource {
	return GatewayManagerResource{
		Resource:    Resource{ODataID: odataID, ODataType: TypeGatewayManager, ID: id, Name: "fishgate gateway"},
		ManagerType: gatewayManagerType,
		Description: "The gateway itself: its audit log",
		Status:      Status{State: "Enabled", Health: "OK"},
		LogServices: Link{ODataID: odataID + "/LogServices"},
	}
}

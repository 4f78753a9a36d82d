package schemas

// Link is a navigation property: {"@odata.id": "..."}.
type Link struct {
	ODataID string `json:"@odata.id"`
}

// Resource carries the properties every Redfish resource has (DSP0266 §9.3).
type Resource struct {
	ODataID   string `json:"@odata.id"`
	ODataType string `json:"@odata.type"`
	ID        string `json:"Id"`
	Name      string `json:"Name"`
}

// RedfishType is the resource's @odata.type (the Link header names its schema).
func (r Resource) RedfishType() string { return r.ODataType }

// RedfishType is the collection's @odata.type.
func (c Collection) RedfishType() string { return c.ODataType }

// Collection is a resource collection (DSP0266 §9.4).
type Collection struct {
	ODataID      string `json:"@odata.id"`
	ODataType    string `json:"@odata.type"`
	Name         string `json:"Name"`
	Members      []Link `json:"Members"`
	MembersCount int    `json:"Members@odata.count"`
	// NextLink is the next page of a paged collection (DSP0266 §7.3.4
	// "Query parameters": $top and $skip, and server-driven paging).
	NextLink string `json:"Members@odata.nextLink,omitempty"`
}

// NewCollection builds a collection of the given members.
func NewCollection(id, odataType, name string, members []Link) Collection {
	if members == nil {
		members = []Link{}
	}
	return Collection{ODataID: id, ODataType: odataType, Name: name, Members: members, MembersCount: len(members)}
}

// Status is Resource.Status.
type Status struct {
	State  string `json:"State,omitempty"`
	Health string `json:"Health,omitempty"`
}

// Versioned @odata.type values the gateway renders; each names a schema
// version whose properties it uses (checked against the DMTF schemas in tests).
const (
	TypeServiceRoot          = "#ServiceRoot.v1_17_0.ServiceRoot"
	TypeComputerSystem       = "#ComputerSystem.v1_20_0.ComputerSystem"
	TypeComputerSystemColl   = "#ComputerSystemCollection.ComputerSystemCollection"
	TypeManager              = "#Manager.v1_17_0.Manager"
	TypeManagerColl          = "#ManagerCollection.ManagerCollection"
	TypeChassis              = "#Chassis.v1_23_0.Chassis"
	TypeChassisColl          = "#ChassisCollection.ChassisCollection"
	TypeSessionService       = "#SessionService.v1_1_9.SessionService"
	TypeSession              = "#Session.v1_7_0.Session"
	TypeSessionColl          = "#SessionCollection.SessionCollection"
	TypeAccountService       = "#AccountService.v1_15_0.AccountService"
	TypeManagerAccount       = "#ManagerAccount.v1_12_0.ManagerAccount"
	TypeManagerAccountColl   = "#ManagerAccountCollection.ManagerAccountCollection"
	RedfishVersion           = "1.20.0"
	ProtocolVersionsResource = "v1"
)

// ServiceRoot is /redfish/v1 (ServiceRoot v1_17_0).
type ServiceRoot struct {
	Resource
	RedfishVersion string `json:"RedfishVersion"`
	UUID           string `json:"UUID,omitempty"`
	Product        string `json:"Product,omitempty"`
	Vendor         string `json:"Vendor,omitempty"`
	Systems        *Link  `json:"Systems,omitempty"`
	Managers       *Link  `json:"Managers,omitempty"`
	Chassis        *Link  `json:"Chassis,omitempty"`
	SessionService *Link  `json:"SessionService,omitempty"`
	AccountService *Link  `json:"AccountService,omitempty"`
	TaskService    *Link  `json:"Tasks,omitempty"`
	EventService   *Link  `json:"EventService,omitempty"`
	// AggregationService holds the Aggregates (and their bulk power).
	AggregationService *Link           `json:"AggregationService,omitempty"`
	Links              ServiceRootLink `json:"Links"`
}

// ServiceRootLink is ServiceRoot.Links.
type ServiceRootLink struct {
	Sessions Link `json:"Sessions"`
}

// ResetAction is the #ComputerSystem.Reset entry of Actions.
type ResetAction struct {
	Target          string      `json:"target"`
	Title           string      `json:"title,omitempty"`
	AllowableResets []ResetType `json:"ResetType@Redfish.AllowableValues"`
}

// SystemActions is ComputerSystem.Actions.
type SystemActions struct {
	Reset ResetAction `json:"#ComputerSystem.Reset"`
}

// Boot is ComputerSystem.Boot.
type Boot struct {
	BootSourceOverrideTarget         string   `json:"BootSourceOverrideTarget"`
	BootSourceOverrideTargetAllowed  []string `json:"BootSourceOverrideTarget@Redfish.AllowableValues"`
	BootSourceOverrideEnabled        string   `json:"BootSourceOverrideEnabled"`
	BootSourceOverrideEnabledAllowed []string `json:"BootSourceOverrideEnabled@Redfish.AllowableValues"`
	BootSourceOverrideMode           string   `json:"BootSourceOverrideMode,omitempty"`
	BootSourceOverrideModeAllowed    []string `json:"BootSourceOverrideMode@Redfish.AllowableValues,omitempty"`
}

// SystemLinks is ComputerSystem.Links.
type SystemLinks struct {
	ManagedBy []Link `json:"ManagedBy"`
	Chassis   []Link `json:"Chassis"`
}

// ComputerSystem is one node (ComputerSystem v1_20_0).
type ComputerSystem struct {
	Resource
	SystemType  string         `json:"SystemType"`
	PowerState  *PowerState    `json:"PowerState"`
	Boot        Boot           `json:"Boot"`
	Status      Status         `json:"Status"`
	Links       SystemLinks    `json:"Links"`
	Actions     SystemActions  `json:"Actions"`
	LogServices *Link          `json:"LogServices,omitempty"`
	Oem         map[string]any `json:"Oem,omitempty"`
}

// Manager is a node's BMC (Manager v1_17_0).
type Manager struct {
	Resource
	ManagerType string         `json:"ManagerType"`
	Status      Status         `json:"Status"`
	Links       ManagerLinks   `json:"Links"`
	Oem         map[string]any `json:"Oem,omitempty"`
}

// ManagerLinks is Manager.Links.
type ManagerLinks struct {
	ManagerForServers []Link `json:"ManagerForServers"`
	ManagerForChassis []Link `json:"ManagerForChassis"`
}

// Chassis is a node's enclosure (Chassis v1_23_0).
type Chassis struct {
	Resource
	ChassisType string       `json:"ChassisType"`
	PowerState  *PowerState  `json:"PowerState"`
	Status      Status       `json:"Status"`
	Links       ChassisLinks `json:"Links"`
}

// ChassisLinks is Chassis.Links.
type ChassisLinks struct {
	ComputerSystems []Link `json:"ComputerSystems"`
	ManagedBy       []Link `json:"ManagedBy"`
}

// SessionService is /redfish/v1/SessionService (SessionService v1_1_9).
type SessionService struct {
	Resource
	ServiceEnabled bool   `json:"ServiceEnabled"`
	SessionTimeout int    `json:"SessionTimeout"`
	Sessions       Link   `json:"Sessions"`
	Status         Status `json:"Status"`
}

// Session is one login session (Session v1_7_0). The password is never rendered.
type Session struct {
	Resource
	UserName    string `json:"UserName"`
	CreatedTime string `json:"CreatedTime,omitempty"`
	SessionType string `json:"SessionType,omitempty"`
}

// AccountService is /redfish/v1/AccountService (AccountService v1_15_0).
type AccountService struct {
	Resource
	ServiceEnabled                  bool   `json:"ServiceEnabled"`
	Accounts                        Link   `json:"Accounts"`
	Roles                           Link   `json:"Roles"`
	LocalAccountAuth                string `json:"LocalAccountAuth"`
	MinPasswordLength               int    `json:"MinPasswordLength"`
	AccountLockoutThreshold         int    `json:"AccountLockoutThreshold"`
	AccountLockoutDuration          int    `json:"AccountLockoutDuration"`
	AccountLockoutCounterResetAfter int    `json:"AccountLockoutCounterResetAfter"`
}

// Role is one of the predefined roles (Role v1_3_1).
type Role struct {
	Resource
	RoleID             string   `json:"RoleId"`
	IsPredefined       bool     `json:"IsPredefined"`
	AssignedPrivileges []string `json:"AssignedPrivileges"`
	OemPrivileges      []string `json:"OemPrivileges"`
}

// Role types.
const (
	TypeRole     = "#Role.v1_3_1.Role"
	TypeRoleColl = "#RoleCollection.RoleCollection"
)

// ManagerAccount is one configured account (ManagerAccount v1_12_0).
type ManagerAccount struct {
	Resource
	UserName     string         `json:"UserName"`
	RoleID       string         `json:"RoleId"`
	Enabled      bool           `json:"Enabled"`
	Locked       bool           `json:"Locked"`
	AccountTypes []string       `json:"AccountTypes"`
	Oem          map[string]any `json:"Oem,omitempty"`
}

// Task and TaskService types.
const (
	TypeTaskService = "#TaskService.v1_2_1.TaskService"
	TypeTask        = "#Task.v1_7_0.Task"
	TypeTaskColl    = "#TaskCollection.TaskCollection"
)

// TaskService is /redfish/v1/TaskService (TaskService v1_2_1).
type TaskService struct {
	Resource
	ServiceEnabled                  bool   `json:"ServiceEnabled"`
	CompletedTaskOverWritePolicy    string `json:"CompletedTaskOverWritePolicy"`
	LifeCycleEventOnTaskStateChange bool   `json:"LifeCycleEventOnTaskStateChange"`
	DateTime                        string `json:"DateTime"`
	Tasks                           Link   `json:"Tasks"`
	Status                          Status `json:"Status"`
}

// TaskPayload is Task.Payload: the request the task carries out.
type TaskPayload struct {
	HTTPOperation string   `json:"HttpOperation"`
	TargetURI     string   `json:"TargetUri"`
	JSONBody      string   `json:"JsonBody"`
	HTTPHeaders   []string `json:"HttpHeaders"`
}

// Task is one power action (Task v1_7_0).
type Task struct {
	Resource
	TaskState       TaskState   `json:"TaskState"`
	TaskStatus      string      `json:"TaskStatus"`
	StartTime       string      `json:"StartTime,omitempty"`
	EndTime         string      `json:"EndTime,omitempty"`
	PercentComplete int         `json:"PercentComplete"`
	TaskMonitor     string      `json:"TaskMonitor"`
	Messages        []Message   `json:"Messages"`
	Payload         TaskPayload `json:"Payload"`
	// SubTasks links a bulk request's parent task to its per-node
	// sub-tasks (absent on a sub-task and on a single node's task).
	SubTasks *Link          `json:"SubTasks,omitempty"`
	Oem      map[string]any `json:"Oem,omitempty"`
}

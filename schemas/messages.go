package schemas

import (
	"fmt"
	"strings"
)

// BaseRegistry is the Base message registry version the gateway's MessageIds
// name (DSP0266 §9.6 "MessageId format": Registry.Major.Minor.Key).
const BaseRegistry = "Base.1.22"

// Message is a Redfish Message (Message v1_x) as found in
// @Message.ExtendedInfo and Task.Messages.
type Message struct {
	ODataType         string   `json:"@odata.type,omitempty"`
	MessageID         string   `json:"MessageId"`
	Message           string   `json:"Message"`
	MessageArgs       []string `json:"MessageArgs"`
	MessageSeverity   string   `json:"MessageSeverity"`
	Severity          string   `json:"Severity,omitempty"`
	Resolution        string   `json:"Resolution"`
	RelatedProperties []string `json:"RelatedProperties,omitempty"`
}

// registryEntry is the fixed text of one message of a registry (facts from
// the DMTF Base registry, DSP8011).
type registryEntry struct {
	text       string
	args       int
	severity   string
	resolution string
}

var baseEntries = map[string]registryEntry{
	"Success":                       {"The request completed successfully.", 0, "OK", "None."},
	"Created":                       {"The resource was created successfully.", 0, "OK", "None."},
	"GeneralError":                  {"A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.", 0, "Critical", "None."},
	"InternalError":                 {"The request failed due to an internal service error.  The service is still operational.", 0, "Critical", "Resubmit the request.  If the problem persists, consider resetting the service."},
	"ResourceNotFound":              {"The requested resource of type %1 named '%2' was not found.", 2, "Critical", "Provide a valid resource identifier and resubmit the request."},
	"ResourceMissingAtURI":          {"The resource at the URI '%1' was not found.", 1, "Critical", "Place a valid resource at the URI or correct the URI and resubmit the request."},
	"InvalidURI":                    {"The URI %1 was not found.", 1, "Critical", "Provide a valid URI and resubmit the request."},
	"ActionParameterValueNotInList": {"The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable values.", 3, "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	"ActionParameterValueTypeError": {"The value '%1' for the parameter %2 in the action %3 is not a type that the parameter can accept.", 3, "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
	"ActionParameterMissing":        {"The action %1 requires the parameter %2 to be present in the request body.", 2, "Critical", "Supply the action with the required parameter in the request body when the request is resubmitted."},
	"ActionParameterUnknown":        {"The action %1 was submitted with the invalid parameter %2.", 2, "Warning", "Correct the invalid action parameter and resubmit the request if the operation failed."},
	"ActionNotSupported":            {"The action %1 is not supported by the resource.", 1, "Critical", "Check the Actions property in the resource for the supported actions."},
	"MalformedJSON":                 {"The request body submitted was malformed JSON and could not be parsed by the receiving service.", 0, "Critical", "Ensure that the request body is valid JSON and resubmit the request."},
	"PropertyUnknown":               {"The property %1 is not in the list of valid properties for the resource.", 1, "Warning", "Remove the unknown property from the request body and resubmit the request if the operation failed."},
	"PropertyValueNotInList":        {"The value '%1' for the property %2 is not in the list of acceptable values.", 2, "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	"PropertyValueTypeError":        {"The value '%1' for the property %2 is not a type that the property can accept.", 2, "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	"SessionLimitExceeded":          {"The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.", 0, "Critical", "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions, if supported."},
	"ResourceAlreadyExists":         {"The requested resource of type %1 with the property %2 with the value '%3' already exists.", 3, "Critical", "Do not repeat the create operation as the resource was already created."},
	"NoOperation":                   {"The request body submitted contain no data to act upon and no changes to the resource took place.", 0, "Warning", "Add properties in the JSON object and resubmit the request."},
	"PropertyNotWritable":           {"The property %1 is a read-only property and cannot be assigned a value.", 1, "Warning", "Remove the property from the request body and resubmit the request if the operation failed."},
	"PropertyMissing":               {"The property %1 is a required property and must be included in the request.", 1, "Warning", "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed."},
	"InsufficientPrivilege":         {"There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.", 0, "Critical", "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed."},
	"NoValidSession":                {"There is no valid session established with the implementation.", 0, "Critical", "Establish a session before attempting any operations."},
	"ServiceTemporarilyUnavailable": {"The service is temporarily unavailable.  Retry in %1 seconds.", 1, "Critical", "Wait for the indicated retry duration and retry the operation."},
	"PreconditionFailed":            {"The ETag supplied did not match the ETag required to change this resource.", 0, "Critical", "Try the operation again using the appropriate ETag."},
	"PayloadTooLarge":               {"The supplied payload exceeds the maximum size supported by the service.", 0, "Critical", "Check that the supplied payload is correct and supported by this service."},
	"OperationNotAllowed":           {"The HTTP method is not allowed on this resource.", 0, "Critical", "None."},
	"ResourceCannotBeDeleted":       {"The delete request failed because the resource requested cannot be deleted.", 0, "Critical", "Do not attempt to delete a non-deletable resource."},
	"ResourceInUse":                 {"The change to the requested resource failed because the resource is in use or in transition.", 0, "Warning", "Remove the condition and resubmit the request if the operation failed."},
	"ResourceAtUriUnauthorized":     {"While accessing the resource at '%1', the service received an authorization error '%2'.", 2, "Critical", "Ensure that the appropriate access is provided for the service in order for it to access the URI."},
	"QueryNotSupported":             {"Querying is not supported by the implementation.", 0, "Warning", "Remove the query parameters and resubmit the request if the operation failed."},
	"QueryParameterUnsupported":     {"Query parameter '%1' is not supported.", 1, "Warning", "Correct or remove the query parameter and resubmit the request."},
	"PropertyDuplicate":             {"The property %1 was duplicated in the request.", 1, "Warning", "Remove the duplicate property from the request body and resubmit the request if the operation failed."},
	"ActionParameterDuplicate":      {"The action %1 was submitted with more than one value for the parameter %2.", 2, "Warning", "Resubmit the action with only one instance of the action parameter in the request body if the operation failed."},
	"ActionParameterValueConflict":  {"The parameter '%1' with the requested value of '%2' does not meet the constraints of the implementation.", 2, "Warning", "None."},

	// EventService (subscriptions and the SSE stream).
	"PropertyValueFormatError":       {"The value '%1' for the property %2 is not a format that the property can accept.", 2, "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	"PropertyValueIncorrect":         {"The property '%1' with the requested value of '%2' could not be written because the value is not acceptable for the property.", 2, "Warning", "None."},
	"QueryParameterValueFormatError": {"The value '%1' for the parameter %2 is not a format that the parameter can accept.", 2, "Warning", "Correct the value for the query parameter in the request and resubmit the request if the operation failed."},
	"HeaderInvalid":                  {"Header '%1' is invalid.", 1, "Critical", "Resubmit the request with a valid request header."},
	"EventSubscriptionLimitExceeded": {"The event subscription failed due to the number of simultaneous subscriptions exceeding the limit of the implementation.", 0, "Critical", "Reduce the number of other subscriptions before trying to establish the event subscription or increase the limit of simultaneous subscriptions, if supported."},
}

// TaskEventRegistry is the TaskEvent registry version (DSP8011).
const TaskEventRegistry = "TaskEvent.1.0"

var taskEventEntries = map[string]registryEntry{
	"TaskStarted":          {"The task with Id '%1' has started.", 1, "OK", "None."},
	"TaskCompletedOK":      {"The task with Id '%1' has completed.", 1, "OK", "None."},
	"TaskCompletedWarning": {"The task with Id '%1' has completed with warnings.", 1, "Warning", "None."},
	"TaskAborted":          {"The task with Id '%1' has completed with errors.", 1, "Critical", "None."},
	"TaskCancelled":        {"Work on the task with Id '%1' was halted prior to completion due to an explicit request.", 1, "Warning", "None."},
	"TaskProgressChanged":  {"The task with Id '%1' has changed to progress %2 percent complete.", 2, "OK", "None."},
}

// ResourceEventRegistry is the ResourceEvent registry version (DSP8011).
const ResourceEventRegistry = "ResourceEvent.1.4"

var resourceEventEntries = map[string]registryEntry{
	"ResourcePoweredOn":             {"The resource '%1' has powered on.", 1, "OK", "None."},
	"ResourcePoweringOn":            {"The resource '%1' is powering on.", 1, "OK", "None."},
	"ResourcePoweredOff":            {"The resource '%1' has powered off.", 1, "OK", "None."},
	"ResourcePoweringOff":           {"The resource '%1' is powering off.", 1, "OK", "None."},
	"ResourceErrorsDetected":        {"The resource property %1 has detected errors of type '%2'.", 2, "Warning", "Resolution is dependent upon error type."},
	"ResourceStatusChangedCritical": {"The health of resource '%1' has changed to %2.", 2, "Critical", "None."},
	"ResourceStatusChangedOK":       {"The health of resource '%1' has changed to %2.", 2, "OK", "None."},
}

// ResourceEvent builds a ResourceEvent registry message (same rules as Base).
func ResourceEvent(key string, args ...string) Message {
	return build(ResourceEventRegistry, resourceEventEntries, key, args)
}

// Base builds the Base registry message key with args. It panics on an
// unknown key or a wrong argument count: both are programming errors caught
// by the registry test, never by user input.
func Base(key string, args ...string) Message {
	return build(BaseRegistry, baseEntries, key, args)
}

// TaskEvent builds a TaskEvent registry message (same rules as Base).
func TaskEvent(key string, args ...string) Message {
	return build(TaskEventRegistry, taskEventEntries, key, args)
}

func build(registry string, entries map[string]registryEntry, key string, args []string) Message {
	e, ok := entries[key]
	if !ok {
		panic("schemas: unknown " + registry + " message " + key)
	}
	if len(args) != e.args {
		panic(fmt.Sprintf("schemas: %s message %s takes %d args, got %d", registry, key, e.args, len(args)))
	}
	text := e.text
	for i := len(args); i >= 1; i-- { // %10 before %1
		text = strings.ReplaceAll(text, fmt.Sprintf("%%%d", i), args[i-1])
	}
	if args == nil {
		args = []string{}
	}
	return Message{
		ODataType:       "#Message.v1_1_1.Message",
		MessageID:       registry + "." + key,
		Message:         text,
		MessageArgs:     args,
		MessageSeverity: e.severity,
		Severity:        e.severity,
		Resolution:      e.resolution,
	}
}

// ErrorBody is the Redfish error response (redfish-error v1_0_2, DSP0266 §9.7).
type ErrorBody struct {
	Error ErrorObject `json:"error"`
}

// ErrorObject is the "error" member of an error response.
type ErrorObject struct {
	Code         string    `json:"code"`
	Message      string    `json:"message"`
	ExtendedInfo []Message `json:"@Message.ExtendedInfo"`
}

// NewError builds an error body whose code and message come from the first
// message.
func NewError(msgs ...Message) ErrorBody {
	if len(msgs) == 0 {
		msgs = []Message{Base("GeneralError")}
	}
	return ErrorBody{Error: ErrorObject{Code: msgs[0].MessageID, Message: msgs[0].Message, ExtendedInfo: msgs}}
}

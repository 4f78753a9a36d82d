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
// the DMTF registries, DSP8011).
type registryEntry struct {
	key        string // the MessageId's last part
	text       string
	args       int
	severity   string
	resolution string
}

// BaseMessage names a message of the Base registry: a constant per
// message the gateway builds, so a wrong name does not compile.
type BaseMessage int

const (
	MsgSuccess BaseMessage = iota
	MsgCreated
	MsgGeneralError
	MsgInternalError
	MsgResourceNotFound
	MsgResourceMissingAtURI
	MsgInvalidURI
	MsgActionParameterValueNotInList
	MsgActionParameterValueTypeError
	MsgActionParameterMissing
	MsgActionParameterUnknown
	MsgActionNotSupported
	MsgMalformedJSON
	MsgPropertyUnknown
	MsgPropertyValueNotInList
	MsgPropertyValueTypeError
	MsgSessionLimitExceeded
	MsgResourceAlreadyExists
	MsgNoOperation
	MsgPropertyNotWritable
	MsgPropertyMissing
	MsgInsufficientPrivilege
	MsgNoValidSession
	MsgServiceTemporarilyUnavailable
	MsgPreconditionFailed
	MsgPayloadTooLarge
	MsgOperationNotAllowed
	MsgResourceCannotBeDeleted
	MsgResourceInUse
	MsgResourceAtUriUnauthorized
	MsgQueryNotSupported
	MsgQueryParameterUnsupported
	MsgPropertyDuplicate
	MsgActionParameterDuplicate
	MsgActionParameterValueConflict
	// Bulk power (AggregationService.Reset, Aggregate.Reset).
	MsgActionParameterValueError
	MsgActionParameterValueOutOfRange

	// EventService (subscriptions and the SSE stream).
	MsgPropertyValueFormatError
	MsgPropertyValueIncorrect
	MsgQueryParameterValueFormatError
	MsgHeaderInvalid
	MsgEventSubscriptionLimitExceeded
	numBaseMessages // the number of messages; not one
)

var baseEntries = [numBaseMessages]registryEntry{
	MsgSuccess:                       {"Success", "The request completed successfully.", 0, "OK", "None."},
	MsgCreated:                       {"Created", "The resource was created successfully.", 0, "OK", "None."},
	MsgGeneralError:                  {"GeneralError", "A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.", 0, "Critical", "None."},
	MsgInternalError:                 {"InternalError", "The request failed due to an internal service error.  The service is still operational.", 0, "Critical", "Resubmit the request.  If the problem persists, consider resetting the service."},
	MsgResourceNotFound:              {"ResourceNotFound", "The requested resource of type %1 named '%2' was not found.", 2, "Critical", "Provide a valid resource identifier and resubmit the request."},
	MsgResourceMissingAtURI:          {"ResourceMissingAtURI", "The resource at the URI '%1' was not found.", 1, "Critical", "Place a valid resource at the URI or correct the URI and resubmit the request."},
	MsgInvalidURI:                    {"InvalidURI", "The URI %1 was not found.", 1, "Critical", "Provide a valid URI and resubmit the request."},
	MsgActionParameterValueNotInList: {"ActionParameterValueNotInList", "The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable values.", 3, "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	MsgActionParameterValueTypeError: {"ActionParameterValueTypeError", "The value '%1' for the parameter %2 in the action %3 is not a type that the parameter can accept.", 3, "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
	MsgActionParameterMissing:        {"ActionParameterMissing", "The action %1 requires the parameter %2 to be present in the request body.", 2, "Critical", "Supply the action with the required parameter in the request body when the request is resubmitted."},
	MsgActionParameterUnknown:        {"ActionParameterUnknown", "The action %1 was submitted with the invalid parameter %2.", 2, "Warning", "Correct the invalid action parameter and resubmit the request if the operation failed."},
	MsgActionNotSupported:            {"ActionNotSupported", "The action %1 is not supported by the resource.", 1, "Critical", "Check the Actions property in the resource for the supported actions."},
	MsgMalformedJSON:                 {"MalformedJSON", "The request body submitted was malformed JSON and could not be parsed by the receiving service.", 0, "Critical", "Ensure that the request body is valid JSON and resubmit the request."},
	MsgPropertyUnknown:               {"PropertyUnknown", "The property %1 is not in the list of valid properties for the resource.", 1, "Warning", "Remove the unknown property from the request body and resubmit the request if the operation failed."},
	MsgPropertyValueNotInList:        {"PropertyValueNotInList", "The value '%1' for the property %2 is not in the list of acceptable values.", 2, "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	MsgPropertyValueTypeError:        {"PropertyValueTypeError", "The value '%1' for the property %2 is not a type that the property can accept.", 2, "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	MsgSessionLimitExceeded:          {"SessionLimitExceeded", "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.", 0, "Critical", "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions, if supported."},
	MsgResourceAlreadyExists:         {"ResourceAlreadyExists", "The requested resource of type %1 with the property %2 with the value '%3' already exists.", 3, "Critical", "Do not repeat the create operation as the resource was already created."},
	MsgNoOperation:                   {"NoOperation", "The request body submitted contain no data to act upon and no changes to the resource took place.", 0, "Warning", "Add properties in the JSON object and resubmit the request."},
	MsgPropertyNotWritable:           {"PropertyNotWritable", "The property %1 is a read-only property and cannot be assigned a value.", 1, "Warning", "Remove the property from the request body and resubmit the request if the operation failed."},
	MsgPropertyMissing:               {"PropertyMissing", "The property %1 is a required property and must be included in the request.", 1, "Warning", "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed."},
	MsgInsufficientPrivilege:         {"InsufficientPrivilege", "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.", 0, "Critical", "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed."},
	MsgNoValidSession:                {"NoValidSession", "There is no valid session established with the implementation.", 0, "Critical", "Establish a session before attempting any operations."},
	MsgServiceTemporarilyUnavailable: {"ServiceTemporarilyUnavailable", "The service is temporarily unavailable.  Retry in %1 seconds.", 1, "Critical", "Wait for the indicated retry duration and retry the operation."},
	MsgPreconditionFailed:            {"PreconditionFailed", "The ETag supplied did not match the ETag required to change this resource.", 0, "Critical", "Try the operation again using the appropriate ETag."},
	MsgPayloadTooLarge:               {"PayloadTooLarge", "The supplied payload exceeds the maximum size supported by the service.", 0, "Critical", "Check that the supplied payload is correct and supported by this service."},
	MsgOperationNotAllowed:           {"OperationNotAllowed", "The HTTP method is not allowed on this resource.", 0, "Critical", "None."},
	MsgResourceCannotBeDeleted:       {"ResourceCannotBeDeleted", "The delete request failed because the resource requested cannot be deleted.", 0, "Critical", "Do not attempt to delete a non-deletable resource."},
	MsgResourceInUse:                 {"ResourceInUse", "The change to the requested resource failed because the resource is in use or in transition.", 0, "Warning", "Remove the condition and resubmit the request if the operation failed."},
	MsgResourceAtUriUnauthorized:     {"ResourceAtUriUnauthorized", "While accessing the resource at '%1', the service received an authorization error '%2'.", 2, "Critical", "Ensure that the appropriate access is provided for the service in order for it to access the URI."},
	MsgQueryNotSupported:             {"QueryNotSupported", "Querying is not supported by the implementation.", 0, "Warning", "Remove the query parameters and resubmit the request if the operation failed."},
	MsgQueryParameterUnsupported:     {"QueryParameterUnsupported", "Query parameter '%1' is not supported.", 1, "Warning", "Correct or remove the query parameter and resubmit the request."},
	MsgPropertyDuplicate:             {"PropertyDuplicate", "The property %1 was duplicated in the request.", 1, "Warning", "Remove the duplicate property from the request body and resubmit the request if the operation failed."},
	MsgActionParameterDuplicate:      {"ActionParameterDuplicate", "The action %1 was submitted with more than one value for the parameter %2.", 2, "Warning", "Resubmit the action with only one instance of the action parameter in the request body if the operation failed."},
	MsgActionParameterValueConflict:  {"ActionParameterValueConflict", "The parameter '%1' with the requested value of '%2' does not meet the constraints of the implementation.", 2, "Warning", "None."},
	// Bulk power (AggregationService.Reset, Aggregate.Reset).
	MsgActionParameterValueError:      {"ActionParameterValueError", "The value for the parameter %1 in the action %2 is invalid.", 2, "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
	MsgActionParameterValueOutOfRange: {"ActionParameterValueOutOfRange", "The value '%1' for the parameter %2 in the action %3 is not in the supported range of acceptable values.", 3, "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},

	// EventService (subscriptions and the SSE stream).
	MsgPropertyValueFormatError:       {"PropertyValueFormatError", "The value '%1' for the property %2 is not a format that the property can accept.", 2, "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	MsgPropertyValueIncorrect:         {"PropertyValueIncorrect", "The property '%1' with the requested value of '%2' could not be written because the value is not acceptable for the property.", 2, "Warning", "None."},
	MsgQueryParameterValueFormatError: {"QueryParameterValueFormatError", "The value '%1' for the parameter %2 is not a format that the parameter can accept.", 2, "Warning", "Correct the value for the query parameter in the request and resubmit the request if the operation failed."},
	MsgHeaderInvalid:                  {"HeaderInvalid", "Header '%1' is invalid.", 1, "Critical", "Resubmit the request with a valid request header."},
	MsgEventSubscriptionLimitExceeded: {"EventSubscriptionLimitExceeded", "The event subscription failed due to the number of simultaneous subscriptions exceeding the limit of the implementation.", 0, "Critical", "Reduce the number of other subscriptions before trying to establish the event subscription or increase the limit of simultaneous subscriptions, if supported."},
}

// TaskEventRegistry is the TaskEvent registry version (DSP8011).
const TaskEventRegistry = "TaskEvent.1.0"

// TaskEventMessage names a message of the TaskEvent registry: a constant per
// message the gateway builds, so a wrong name does not compile.
type TaskEventMessage int

const (
	MsgTaskStarted TaskEventMessage = iota
	MsgTaskCompletedOK
	MsgTaskCompletedWarning
	MsgTaskAborted
	MsgTaskCancelled
	MsgTaskProgressChanged
	numTaskEventMessages // the number of messages; not one
)

var taskEventEntries = [numTaskEventMessages]registryEntry{
	MsgTaskStarted:          {"TaskStarted", "The task with Id '%1' has started.", 1, "OK", "None."},
	MsgTaskCompletedOK:      {"TaskCompletedOK", "The task with Id '%1' has completed.", 1, "OK", "None."},
	MsgTaskCompletedWarning: {"TaskCompletedWarning", "The task with Id '%1' has completed with warnings.", 1, "Warning", "None."},
	MsgTaskAborted:          {"TaskAborted", "The task with Id '%1' has completed with errors.", 1, "Critical", "None."},
	MsgTaskCancelled:        {"TaskCancelled", "Work on the task with Id '%1' was halted prior to completion due to an explicit request.", 1, "Warning", "None."},
	MsgTaskProgressChanged:  {"TaskProgressChanged", "The task with Id '%1' has changed to progress %2 percent complete.", 2, "OK", "None."},
}

// ResourceEventRegistry is the ResourceEvent registry version (DSP8011).
const ResourceEventRegistry = "ResourceEvent.1.4"

// ResourceEventMessage names a message of the ResourceEvent registry: a constant per
// message the gateway builds, so a wrong name does not compile.
type ResourceEventMessage int

const (
	MsgResourcePoweredOn ResourceEventMessage = iota
	MsgResourcePoweringOn
	MsgResourcePoweredOff
	MsgResourcePoweringOff
	MsgResourceErrorsDetected
	MsgResourceStatusChangedCritical
	MsgResourceStatusChangedOK
	numResourceEventMessages // the number of messages; not one
)

var resourceEventEntries = [numResourceEventMessages]registryEntry{
	MsgResourcePoweredOn:             {"ResourcePoweredOn", "The resource '%1' has powered on.", 1, "OK", "None."},
	MsgResourcePoweringOn:            {"ResourcePoweringOn", "The resource '%1' is powering on.", 1, "OK", "None."},
	MsgResourcePoweredOff:            {"ResourcePoweredOff", "The resource '%1' has powered off.", 1, "OK", "None."},
	MsgResourcePoweringOff:           {"ResourcePoweringOff", "The resource '%1' is powering off.", 1, "OK", "None."},
	MsgResourceErrorsDetected:        {"ResourceErrorsDetected", "The resource property %1 has detected errors of type '%2'.", 2, "Warning", "Resolution is dependent upon error type."},
	MsgResourceStatusChangedCritical: {"ResourceStatusChangedCritical", "The health of resource '%1' has changed to %2.", 2, "Critical", "None."},
	MsgResourceStatusChangedOK:       {"ResourceStatusChangedOK", "The health of resource '%1' has changed to %2.", 2, "OK", "None."},
}

// ResourceEvent builds a ResourceEvent registry message (same rules as Base).
func ResourceEvent(m ResourceEventMessage, args ...string) Message {
	return build(ResourceEventRegistry, resourceEventEntries[:], int(m), args)
}

// Base builds the Base registry message m with args. It panics on a wrong
// argument count: a programming error caught by the registry tests, never
// by user input.
func Base(m BaseMessage, args ...string) Message {
	return build(BaseRegistry, baseEntries[:], int(m), args)
}

// TaskEvent builds a TaskEvent registry message (same rules as Base).
func TaskEvent(m TaskEventMessage, args ...string) Message {
	return build(TaskEventRegistry, taskEventEntries[:], int(m), args)
}

// Key is the message's key, the last part of its MessageId
// ("ResourceNotFound").
func (m BaseMessage) Key() string { return entryOf(baseEntries[:], int(m)).key }

// Key is the message's key, the last part of its MessageId ("TaskStarted").
func (m TaskEventMessage) Key() string { return entryOf(taskEventEntries[:], int(m)).key }

// Key is the message's key, the last part of its MessageId
// ("ResourcePoweredOn").
func (m ResourceEventMessage) Key() string { return entryOf(resourceEventEntries[:], int(m)).key }

func (m BaseMessage) String() string          { return m.Key() }
func (m TaskEventMessage) String() string     { return m.Key() }
func (m ResourceEventMessage) String() string { return m.Key() }

// entryOf is entry i of a registry table; a zero entry (no key) outside it.
func entryOf(entries []registryEntry, i int) registryEntry {
	if i < 0 || i >= len(entries) {
		return registryEntry{}
	}
	return entries[i]
}

func build(registry string, entries []registryEntry, i int, args []string) Message {
	e := entryOf(entries, i)
	if e.key == "" {
		panic(fmt.Sprintf("schemas: no %s message number %d", registry, i))
	}
	if len(args) != e.args {
		panic(fmt.Sprintf("schemas: %s message %s takes %d args, got %d", registry, e.key, e.args, len(args)))
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
		MessageID:       registry + "." + e.key,
		Message:         text,
		MessageArgs:     args,
		MessageSeverity: e.severity,
		Severity:        e.severity,
		Resolution:      e.resolution,
	}
}

// MessageByID builds the message of a full MessageId ("ResourceEvent.1.4.
// ResourcePoweredOn") with args, as Base, TaskEvent and ResourceEvent do;
// ok is false for an id of no registry here or a wrong argument count.
// Stored events keep only the id and args, and are rebuilt by it.
func MessageByID(id string, args []string) (m Message, ok bool) {
	for _, r := range registries {
		key, found := strings.CutPrefix(id, r.name+".")
		if !found {
			continue
		}
		if i := r.find(key, len(args)); i >= 0 {
			return build(r.name, r.entries, i, args), true
		}
	}
	return Message{}, false
}

// MessageByKey builds the message of a bare message key ("TaskStarted")
// with args: the first of TaskEvent, ResourceEvent and Base that has it.
// A stored event keeps only the key when this finds the same message
// (ShortID), 14-18 bytes less than the full id.
func MessageByKey(key string, args []string) (m Message, ok bool) {
	for _, r := range registries {
		if i := r.find(key, len(args)); i >= 0 {
			return build(r.name, r.entries, i, args), true
		}
	}
	return Message{}, false
}

// ShortID is the bare key of a registry message that MessageByKey turns
// back into the same message, and ok; the full id and false otherwise.
func ShortID(id string, args []string) (string, bool) {
	key := id[strings.LastIndexByte(id, '.')+1:]
	if m, ok := MessageByKey(key, args); ok && m.MessageID == id {
		return key, true
	}
	return id, false
}

// registries are the message registries, in MessageByKey's order.
var registries = []registry{
	{TaskEventRegistry, taskEventEntries[:]}, {ResourceEventRegistry, resourceEventEntries[:]}, {BaseRegistry, baseEntries[:]},
}

type registry struct {
	name    string
	entries []registryEntry
}

// find is the index of the entry key taking n arguments, or -1.
func (r registry) find(key string, n int) int {
	if key == "" {
		return -1
	}
	for i, e := range r.entries {
		if e.key == key && e.args == n {
			return i
		}
	}
	return -1
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
		msgs = []Message{Base(MsgGeneralError)}
	}
	return ErrorBody{Error: ErrorObject{Code: msgs[0].MessageID, Message: msgs[0].Message, ExtendedInfo: msgs}}
}

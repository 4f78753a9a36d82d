package simulator

import (
	"encoding/json"
	"net/http"
	"strings"
)

// baseRegistry names the DMTF Base message registry the simulator's
// MessageIds come from. DSP0266 "MessageId format": Registry.Major.Minor.Key.
const baseRegistry = "Base.1.22"

// message is a Redfish Message (Message v1_1), as found in
// @Message.ExtendedInfo and Task.Messages.
type message struct {
	ODataType       string   `json:"@odata.type"`
	MessageID       string   `json:"MessageId"`
	Message         string   `json:"Message"`
	MessageArgs     []string `json:"MessageArgs"`
	MessageSeverity string   `json:"MessageSeverity"`
	Severity        string   `json:"Severity"` // deprecated twin of MessageSeverity; old clients read it
	Resolution      string   `json:"Resolution"`
}

// baseMessage builds the Base registry message key. text holds %1, %2, ...
// for args, as in the registry (DSP8011).
func baseMessage(key, severity, text, resolution string, args ...string) message {
	for i := len(args); i >= 1; i-- {
		text = strings.ReplaceAll(text, "%"+string(rune('0'+i)), args[i-1])
	}
	if args == nil {
		args = []string{}
	}
	return message{
		ODataType:       "#Message.v1_1_1.Message",
		MessageID:       baseRegistry + "." + key,
		Message:         text,
		MessageArgs:     args,
		MessageSeverity: severity,
		Severity:        severity,
		Resolution:      resolution,
	}
}

// The Base registry messages the simulator answers with.

func msgSuccess() message {
	return baseMessage("Success", "OK", "The request completed successfully.", "None.")
}

func msgNoValidSession() message {
	return baseMessage("NoValidSession", "Critical",
		"There is no valid session established with the implementation.",
		"Establish a session before attempting any operations.")
}

func msgResourceMissingAtURI(uri string) message {
	return baseMessage("ResourceMissingAtURI", "Critical",
		"The resource at the URI '%1' was not found.",
		"Place a valid resource at the URI or correct the URI and resubmit the request.", uri)
}

func msgOperationNotAllowed() message {
	return baseMessage("OperationNotAllowed", "Critical",
		"The HTTP method is not allowed on this resource.", "None.")
}

func msgMalformedJSON() message {
	return baseMessage("MalformedJSON", "Critical",
		"The request body submitted was malformed JSON and could not be parsed by the receiving service.",
		"Ensure that the request body is valid JSON and resubmit the request.")
}

func msgActionParameterMissing(action, param string) message {
	return baseMessage("ActionParameterMissing", "Critical",
		"The action %1 requires the parameter %2 to be present in the request body.",
		"Supply the action with the required parameter in the request body when the request is resubmitted.",
		action, param)
}

func msgActionParameterUnknown(action, param string) message {
	return baseMessage("ActionParameterUnknown", "Warning",
		"The action %1 was submitted with the invalid parameter %2.",
		"Correct the invalid action parameter and resubmit the request if the operation failed.",
		action, param)
}

func msgActionParameterValueTypeError(value, param, action string) message {
	return baseMessage("ActionParameterValueTypeError", "Warning",
		"The value '%1' for the parameter %2 in the action %3 is not a type that the parameter can accept.",
		"Correct the value for the parameter in the request body and resubmit the request if the operation failed.",
		value, param, action)
}

func msgActionParameterValueNotInList(value, param, action string) message {
	return baseMessage("ActionParameterValueNotInList", "Warning",
		"The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable values.",
		"Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
		value, param, action)
}

func msgPropertyUnknown(prop string) message {
	return baseMessage("PropertyUnknown", "Warning",
		"The property %1 is not in the list of valid properties for the resource.",
		"Remove the unknown property from the request body and resubmit the request if the operation failed.",
		prop)
}

func msgPropertyNotWritable(prop string) message {
	return baseMessage("PropertyNotWritable", "Warning",
		"The property %1 is a read-only property and cannot be assigned a value.",
		"Remove the property from the request body and resubmit the request if the operation failed.",
		prop)
}

func msgPropertyMissing(prop string) message {
	return baseMessage("PropertyMissing", "Warning",
		"The property %1 is a required property and must be included in the request.",
		"Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
		prop)
}

func msgPropertyValueTypeError(value, prop string) message {
	return baseMessage("PropertyValueTypeError", "Warning",
		"The value '%1' for the property %2 is not a type that the property can accept.",
		"Correct the value for the property in the request body and resubmit the request if the operation failed.",
		value, prop)
}

func msgPropertyValueNotInList(value, prop string) message {
	return baseMessage("PropertyValueNotInList", "Warning",
		"The value '%1' for the property %2 is not in the list of acceptable values.",
		"Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
		value, prop)
}

func msgPreconditionFailed() message {
	return baseMessage("PreconditionFailed", "Critical",
		"The ETag supplied did not match the ETag required to change this resource.",
		"Try the operation again using the appropriate ETag.")
}

func msgServiceTemporarilyUnavailable(seconds string) message {
	return baseMessage("ServiceTemporarilyUnavailable", "Critical",
		"The service is temporarily unavailable.  Retry in %1 seconds.",
		"Wait for the indicated retry duration and retry the operation.", seconds)
}

// msgMachineError is a GeneralError whose Message is the simulated
// machine's own error text, as BMCs put their firmware's words there.
func msgMachineError(text string) message {
	return baseMessage("GeneralError", "Critical", text, "None.")
}

// errorBody is the Redfish error response (DSP0266 "Error responses"):
// code and message repeat the first message.
type errorBody struct {
	Error struct {
		Code         string    `json:"code"`
		Message      string    `json:"message"`
		ExtendedInfo []message `json:"@Message.ExtendedInfo"`
	} `json:"error"`
}

// writeError answers status with a Redfish error body made of msgs.
func writeError(w http.ResponseWriter, status int, msgs ...message) {
	var b errorBody
	if len(msgs) > 0 {
		b.Error.Code, b.Error.Message = msgs[0].MessageID, msgs[0].Message
	}
	b.Error.ExtendedInfo = msgs
	writeJSON(w, status, b)
}

// writeJSON answers status with v as JSON, with the headers every Redfish
// response carries.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only our own values are written: a bug
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("OData-Version", "4.0")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

package schemas

// TaskState is Task.TaskState (Task v1_7_0 TaskState enum). The constants
// are the states fishgate's tasks take; the enum has more (Starting,
// Suspended, Interrupted, Pending, Stopping, Killed, Service), which other
// services' tasks may show.
type TaskState string

const (
	TaskStateNew        TaskState = "New"        // admitted, waiting its turn
	TaskStateRunning    TaskState = "Running"    // the node's running action
	TaskStateCancelling TaskState = "Cancelling" // running, cancelled, not yet stopped
	TaskStateCompleted  TaskState = "Completed"  // done (TaskStatus OK or Warning)
	TaskStateException  TaskState = "Exception"  // failed
	TaskStateCancelled  TaskState = "Cancelled"  // cancelled or superseded
)

// TaskStates lists the states of fishgate's tasks, in the order of a
// task's life.
var TaskStates = []TaskState{
	TaskStateNew, TaskStateRunning, TaskStateCancelling,
	TaskStateCompleted, TaskStateException, TaskStateCancelled,
}

// Terminal reports whether a task in state s has finished: nothing about
// it changes any more.
func (s TaskState) Terminal() bool {
	return s == TaskStateCompleted || s == TaskStateException || s == TaskStateCancelled
}

// EndMessage is the TaskEvent message that reports a task ending in state
// s with TaskStatus status: TaskCompletedOK, TaskCompletedWarning,
// TaskAborted (Exception) or TaskCancelled; false while s is not terminal.
func (s TaskState) EndMessage(status string) (TaskEventMessage, bool) {
	switch {
	case s == TaskStateCompleted && status == "Warning":
		return MsgTaskCompletedWarning, true
	case s == TaskStateCompleted:
		return MsgTaskCompletedOK, true
	case s == TaskStateException:
		return MsgTaskAborted, true
	case s == TaskStateCancelled:
		return MsgTaskCancelled, true
	}
	return 0, false
}

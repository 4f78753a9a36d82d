"""Drive fishgate through Ironic's power sequences with Debian's sushy.

Usage: sushy_ironic.py ADDRESS USER PASSWORD SYSTEM_ID

ADDRESS is Ironic's redfish_address (scheme://host:port), SYSTEM_ID its
redfish_system_id (/redfish/v1/Systems/<node>). Authentication is sushy's
SessionOrBasicAuth, which is Ironic's default ("auto").

The sequences are Ironic's redfish power interface (docs/clients.md; Ironic's
drivers/modules/redfish/power.py), in this order from Off:

  power on       On, poll until On
  reboot         (node running) ForceOff, poll until Off, On, poll until On
  soft reboot    GracefulRestart, poll until On (Ironic's target state)
  power off      ForceOff, poll until Off
  power on again On, poll until On
  soft power off GracefulShutdown, poll until Off

sushy refuses, before sending, a ResetType its System does not list in
ResetType@Redfish.AllowableValues, so each sequence also shows the node
offers what Ironic sends.

Every Reset POST goes through sushy's own connector; the script records the
HTTP status, the Location header and the TaskState of the body of each (sushy
itself ignores them). After each sequence it reads each task back through
sushy's TaskMonitor and Task classes (GET of the monitor until it stops
answering 202), and at the end lists the TaskService's tasks with sushy.

It prints one JSON object on stdout for the Go test; sushy's logging goes to
stderr. Any exception ends the script with a traceback and a non-zero status.
"""

import sys
import time

import sushy
from sushy import taskmonitor

from sushy_common import POLL_PAUSE, emit, setup_logging, wait_power

POLL_TIMEOUT = 30.0   # seconds; the gateway verifies within a second or so
TASK_TIMEOUT = 30.0


def read_task(conn, location):
    """Follow a task monitor with sushy until it stops answering 202.

    TaskMonitor.wait is not used: sushy 4.x returns Retry-After verbatim as
    a string ("1") and passes it to time.sleep, which raises TypeError.
    """
    tm = taskmonitor.TaskMonitor(conn, location)
    polls = 0
    first_processing = tm.is_processing
    deadline = time.monotonic() + TASK_TIMEOUT
    progress = []  # the running Task's messages, each once, as first seen
    while tm.check_is_processing:
        polls += 1
        if tm.task is not None:
            for m in tm.task.messages:
                if m.message and m.message not in progress:
                    progress.append(m.message)
        if time.monotonic() > deadline:
            raise RuntimeError('task monitor %s still 202 after %ss'
                               % (location, TASK_TIMEOUT))
        time.sleep(POLL_PAUSE)
    final_status = tm.response.status_code
    task = tm.get_task()  # GET of the monitor, parsed as a Task
    return {
        'location': location,
        'first_processing': first_processing,
        'polls': polls,
        'final_status': final_status,
        'id': task.identity,
        'state': task.task_state.value if task.task_state else None,
        'status': task.task_status.value if task.task_status else None,
        'percent': task.percent_complete,
        'messages': [m.message_id for m in task.messages],
        'message_texts': [m.message for m in task.messages],
        'progress': progress,
        'oem': task.json.get('Oem'),
        'start_time': task.start_time,
        'end_time': task.end_time,
    }


def main():
    setup_logging()
    address, user, password, system_id = sys.argv[1:5]

    auth = sushy.auth.SessionOrBasicAuth(username=user, password=password)
    root = sushy.Sushy(address, auth=auth)
    conn = root._conn

    # Record every POST answer (sushy's reset_system discards it).
    posts = []
    orig_post = conn.post

    def recording_post(path='', data=None, headers=None, blocking=False,
                       timeout=60, **kwargs):
        resp = orig_post(path=path, data=data, headers=headers,
                         blocking=blocking, timeout=timeout, **kwargs)
        body = None
        if resp.content:
            body = resp.json()
        posts.append({
            'path': path,
            'data': data,
            'status': resp.status_code,
            'location': resp.headers.get('Location'),
            'body_state': body.get('TaskState') if isinstance(body, dict) else None,
            'body_type': body.get('@odata.type') if isinstance(body, dict) else None,
        })
        return resp

    conn.post = recording_post

    system = root.get_system(system_id)
    result = {
        'sushy_version': getattr(sushy, '__version__', None),
        'session': bool(getattr(auth, 'get_session_key', lambda: None)()),
        'system_id': system.identity,
        'initial_power': system.power_state.value,
        'allowed_resets': sorted(
            v.value for v in system.get_allowed_reset_system_values()),
        'sequences': {},
    }

    def sequence(name, steps):
        first = len(posts)
        seen = {}
        for i, (reset, want) in enumerate(steps):
            system.reset_system(reset)
            states = []
            wait_power(system, want, states, POLL_TIMEOUT)
            seen['%d:%s' % (i, reset.value)] = states
        resets = posts[first:]
        tasks = [read_task(conn, p['location']) for p in resets
                 if p['location']]
        result['sequences'][name] = {
            'resets': resets, 'states': seen, 'tasks': tasks,
            'power': system.power_state.value,
        }

    # Ironic "power on".
    sequence('power_on', [(sushy.RESET_ON, sushy.SYSTEM_POWER_STATE_ON)])
    # Ironic "reboot" of a running node: hard off, wait, on, wait.
    sequence('reboot', [(sushy.RESET_FORCE_OFF, sushy.SYSTEM_POWER_STATE_OFF),
                        (sushy.RESET_ON, sushy.SYSTEM_POWER_STATE_ON)])
    # Ironic "soft reboot": GracefulRestart, then wait for its target, On.
    sequence('soft_reboot', [(sushy.RESET_GRACEFUL_RESTART,
                              sushy.SYSTEM_POWER_STATE_ON)])
    # Ironic "power off", and "power on" again for the soft power off.
    sequence('power_off', [(sushy.RESET_FORCE_OFF,
                            sushy.SYSTEM_POWER_STATE_OFF)])
    sequence('power_on_again', [(sushy.RESET_ON,
                                 sushy.SYSTEM_POWER_STATE_ON)])
    # Ironic "soft power off".
    sequence('soft_power_off', [(sushy.RESET_GRACEFUL_SHUTDOWN,
                                 sushy.SYSTEM_POWER_STATE_OFF)])

    # The TaskService, as sushy reads it.
    ts = root.get_task_service()
    result['task_service'] = {
        'id': ts.identity,
        'enabled': ts.service_enabled,
        'members': sorted(ts.tasks.members_identities),
        'summary': {k: (v.value if v else None)
                    for k, v in ts.tasks.summary.items()},
    }
    result['final_power'] = system.power_state.value

    auth.close()
    emit(result)


if __name__ == '__main__':
    main()

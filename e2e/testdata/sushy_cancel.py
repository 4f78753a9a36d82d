"""Whether Debian's sushy sees fishgate's tasks as cancellable.

Usage: sushy_cancel.py ADDRESS USER PASSWORD SYSTEM_ID

The node's BMC answers power commands slowly (the Go test sets that), so an
On stays running for a few seconds. The script posts On, then
GracefulRestart (which waits behind the On), and follows both task monitors
with sushy's TaskMonitor (its is_processing is "the monitor answered 202",
its cancellable is "Allow: DELETE"). It DELETEs the waiting task through its
monitor, reads that monitor again, then waits for the On to end and reads
its monitor once more.

It prints one JSON object on stdout for the Go test; sushy's logging goes to
stderr. Any exception ends the script with a traceback and a non-zero status.
"""

import sys
import time

import sushy
from sushy import taskmonitor

from sushy_common import POLL_PAUSE, emit, setup_logging

TASK_TIMEOUT = 30.0


def seen(tm):
    """What sushy makes of the monitor's last answer."""
    task = tm.task if tm.task is not None else tm.get_task()
    return {
        'status': tm.response.status_code,
        'processing': tm.is_processing,
        'cancellable': tm.cancellable,
        'allow': tm.response.headers.get('Allow'),
        'state': task.task_state.value if task.task_state else None,
    }


def main():
    setup_logging()
    address, user, password, system_id = sys.argv[1:5]
    root = sushy.Sushy(address, auth=sushy.auth.BasicAuth(username=user, password=password))
    conn = root._conn
    target = system_id + '/Actions/ComputerSystem.Reset'

    def post(reset_type):
        resp = conn.post(path=target, data={'ResetType': reset_type})
        return resp.status_code, resp.headers.get('Location')

    result = {}
    st_on, on = post('On')
    st_next, nxt = post('GracefulRestart')
    result['posts'] = [st_on, st_next]

    on_tm = taskmonitor.TaskMonitor(conn, on)
    next_tm = taskmonitor.TaskMonitor(conn, nxt)
    result['running'] = seen(on_tm)
    result['waiting'] = seen(next_tm)

    # Cancel the waiting task the way a sushy user would: DELETE on the
    # monitor it was told is cancellable.
    result['delete_status'] = conn.delete(path=nxt).status_code
    next_tm.refresh()
    result['cancelled'] = seen(next_tm)

    deadline = time.monotonic() + TASK_TIMEOUT
    while on_tm.check_is_processing:
        if time.monotonic() > deadline:
            raise RuntimeError('task monitor %s still 202 after %ss' % (on, TASK_TIMEOUT))
        time.sleep(POLL_PAUSE)
    result['finished'] = seen(on_tm)
    emit(result)


if __name__ == '__main__':
    main()

"""What the sushy scripts share: logging set-up, power polling, output.

The scripts import it from their own directory (Python puts a script's
directory first on sys.path).
"""

import json
import logging
import sys
import time

POLL_PAUSE = 0.05  # Ironic polls every second or so; shorter keeps CI fast


def setup_logging():
    """sushy's own logging goes to stderr; stdout is the JSON result."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)


def wait_power(system, want, seen, timeout):
    """Poll the System until power_state is want; record every state seen."""
    deadline = time.monotonic() + timeout
    while True:
        system.refresh()
        state = system.power_state.value if system.power_state else None
        if not seen or seen[-1] != state:
            seen.append(state)
        if system.power_state == want:
            return
        if time.monotonic() > deadline:
            raise RuntimeError('power state %s not reached in %ss; saw %s'
                               % (want.value, timeout, seen))
        time.sleep(POLL_PAUSE)


def emit(result):
    """Print the result for the Go test: one JSON object on stdout."""
    json.dump(result, sys.stdout)
    sys.stdout.write('\n')

"""Drive fishgate the way Ironic's redfish driver does, with Debian's sushy.

Usage: sushy_flow.py ADDRESS USER PASSWORD AUTH [SYSTEM_ID]

ADDRESS is Ironic's redfish_address: scheme://host:port, optionally with a
path that becomes sushy's root prefix (as Ironic does), e.g.
http://127.0.0.1:8000/bmc/node02/redfish/v1. AUTH is "session" (sushy's
SessionOrBasicAuth, Ironic's "auto") or "basic". SYSTEM_ID is Ironic's
redfish_system_id (/redfish/v1/Systems/<node>); without it sushy takes the
only member of the Systems collection.

The flow: read the systems collection and the system, power it on and wait
for On, set a one-time PXE boot, power it off and wait for Off. It prints one
JSON object on stdout for the Go test; sushy's own logging goes to stderr.
Any exception ends the script with a traceback and a non-zero status.
"""

import sys
import urllib.parse

import sushy

from sushy_common import emit, setup_logging, wait_power

POLL_TIMEOUT = 20.0  # seconds; the gateway verifies within a second or so


def main():
    setup_logging()
    address, user, password, auth_kind = sys.argv[1:5]
    system_id = sys.argv[5] if len(sys.argv) > 5 else None

    parsed = urllib.parse.urlparse(address)
    base_url = '%s://%s' % (parsed.scheme, parsed.netloc)
    root_prefix = parsed.path.rstrip('/') + '/' if parsed.path.strip('/') else '/redfish/v1/'

    if auth_kind == 'session':
        auth = sushy.auth.SessionOrBasicAuth(username=user, password=password)
    elif auth_kind == 'basic':
        auth = sushy.auth.BasicAuth(username=user, password=password)
    else:
        raise SystemExit('unknown auth %r' % auth_kind)

    root = sushy.Sushy(base_url, root_prefix=root_prefix, auth=auth)
    result = {
        'sushy_version': getattr(sushy, '__version__', None),
        'root_prefix': root_prefix,
        'redfish_version': root.redfish_version,
        'auth': auth_kind,
    }

    session_key = getattr(auth, 'get_session_key', lambda: None)()
    session_uri = getattr(auth, 'get_session_resource_id', lambda: None)()
    result['session_key_set'] = bool(session_key)
    result['session_uri'] = session_uri
    if session_uri:
        # Read our own session back with the token sushy now sends.
        sess = root._conn.get(session_uri).json()
        result['session_user'] = sess.get('UserName')

    systems = root.get_system_collection()
    result['members'] = sorted(systems.members_identities)

    system = root.get_system(system_id)
    result['system_path'] = system.path
    result['system_id'] = system.identity
    result['initial_power'] = system.power_state.value
    result['allowed_resets'] = sorted(
        v.value for v in system.get_allowed_reset_system_values())

    seen_on = []
    system.reset_system(sushy.RESET_ON)
    wait_power(system, sushy.SYSTEM_POWER_STATE_ON, seen_on, POLL_TIMEOUT)
    result['states_after_on'] = seen_on

    # What Ironic does before deploying: one-time PXE (PATCH with If-Match).
    system.set_system_boot_options(target=sushy.BOOT_SOURCE_TARGET_PXE,
                                   enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
    system.refresh()
    result['boot'] = {'target': system.boot.target.value,
                      'enabled': system.boot.enabled.value}

    seen_off = []
    system.reset_system(sushy.RESET_FORCE_OFF)
    wait_power(system, sushy.SYSTEM_POWER_STATE_OFF, seen_off, POLL_TIMEOUT)
    result['states_after_off'] = seen_off
    result['final_power'] = system.power_state.value

    # Log out, as Ironic's client cache does when it drops a connection.
    auth.close()
    result['logged_out'] = True
    emit(result)


if __name__ == '__main__':
    main()

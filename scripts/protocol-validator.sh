#!/usr/bin/env bash
# Runs the DMTF Redfish Protocol Validator against `fishgate serve` with its
# self-signed TLS certificate, in front of two simulated Redfish BMCs, all in
# a network namespace that has only loopback (nothing can leave the machine:
# the validator subscribes to events at a fixed private address).
#
# Needs root (unshare --net), the offline validator runner ($DMTF_RUNNER, or
# shared/tools/dmtf beside the repository) and DMTF_MIRROR pointing at
# snapshots of the repositories that README names. Prints the validator's last
# line; exit 0 = no failures.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runner=${DMTF_RUNNER:-$repo/../shared/tools/dmtf/run-protocol-validator.sh}
[[ -f $runner ]] || { echo "protocol-validator: $runner not found" >&2; exit 2; }
work=$(mktemp -d /tmp/fishgate-pv.XXXXXX)
(cd "$repo" && go build -o "$work/" ./cmd/fishgate ./cmd/bmcsim)

cat > "$work/inner.sh" <<'INNER'
#!/usr/bin/env bash
set -u
ip link set lo up
cd "$WORK"
./bmcsim --nodes 2 --control 127.0.0.1:18501 --user bmc --password bmcpw > sim.log 2>&1 &
sim=$!
for _ in $(seq 50); do grep -q "^control" sim.log && break; sleep 0.1; done
u1=$(grep -P "^node01\t" sim.log | cut -f2 | sed 's|/redfish.*||')
u2=$(grep -P "^node02\t" sim.log | cut -f2 | sed 's|/redfish.*||')
mkdir -p state
cat > fishgate.yaml <<EOC
listen: 127.0.0.1:18443
tls: {dir: $WORK/state}
accounts:
  - {user: admin, password: validator-pw, role: Administrator}
events:
  allow_destinations: ["192.168.1.50"]   # the validator's fixed test destination; unreachable in this namespace
nodes:
  - {id: node01, backend: redfish, address: $u1, user: bmc, password: bmcpw}
  - {id: node02, backend: redfish, address: $u2, user: bmc, password: bmcpw}
EOC
./fishgate serve --config fishgate.yaml > serve.log 2>&1 &
gw=$!
for _ in $(seq 100); do [[ -f state/fishgate-selfsigned.crt ]] && curl -sk https://127.0.0.1:18443/redfish/v1 >/dev/null && break; sleep 0.1; done
ca=$WORK/state/fishgate-selfsigned.crt
# requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's
# verify setting: trust the gateway's certificate explicitly.
PV_CA_BUNDLE=$ca REQUESTS_CA_BUNDLE=$ca CURL_CA_BUNDLE=$ca bash "$RUNNER" https://127.0.0.1:18443 admin validator-pw
rc=$?
kill $gw $sim 2>/dev/null
exit $rc
INNER
chmod +x "$work/inner.sh"
WORK=$work RUNNER=$runner unshare --net "$work/inner.sh"

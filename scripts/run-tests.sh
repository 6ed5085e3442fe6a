#!/usr/bin/env bash
# The tests `make test` runs after set-up and lint, by cost, in the least wall-clock time two cores allow:
#   * the unit layer on both cores (pytest-xdist);
#   * beside it, the CI fault campaign (tests/cluster/test_faults.py): mostly waiting on outages and
#     checkpoints, and judged on what was lost or duplicated, never on timing;
#   * then every other broker- and Flink-bound test, on two workers, a module per worker at a time
#     (each worker has its own broker, and its own cluster when it runs a cluster module): these tests
#     wait on checkpoints and transactions more than they compute, so two at once take ~60% of the time.
# Arguments go to every pytest run. Exits non-zero when any of the three failed; Ctrl-C stops all of it.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PY:-.venv/bin/python}"
mkdir -p .cache
campaign_log=.cache/test-faults.log

setsid "$py" -m pytest tests/cluster/test_faults.py "$@" >"$campaign_log" 2>&1 &
campaign=$!
trap 'kill -TERM -- "-$campaign" 2>/dev/null; exit 130' INT TERM

"$py" -m pytest -n 2 tests/unit "$@"
unit=$?
wait "$campaign"
faults=$?
echo "--- tests/cluster/test_faults.py (ran beside the unit layer) ---"
cat "$campaign_log"

"$py" -m pytest -n 2 --dist loadfile --ignore=tests/unit --ignore=tests/cluster/test_faults.py --durations=40 "$@"
rest=$?
echo "unit layer: exit $unit; fault campaign: exit $faults; other layers: exit $rest"
ok() { [ "$1" -eq 0 ] || [ "$1" -eq 5 ]; }  # 5: arguments (-k ...) selected no test of that run
ok "$unit" && ok "$faults" && ok "$rest"

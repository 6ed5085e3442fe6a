"""The fault campaign (issue 19): scenarios that hurt a running job, and the oracle that judges what it wrote."""

"""Bad input, fuzzed: every decoder fed mutated and random bytes raises only typed errors (issue 19, item 5)."""

"""Reliability scenarios of issue 8: faults, crashes, outages, bad input and hostile tenants.

`scenarios.py` holds the scenario code, parametrized by size; tests/chaos/test_chaos.py runs the
full versions (`make chaos`, marker `chaos`) and writes bench/results/chaos-*.json and
docs/reliability.md; tests/e2e/test_reliability.py runs short versions in `make test`.
"""

"""The local stack shared by `make dev` and the tests: control plane, moto, the operator."""

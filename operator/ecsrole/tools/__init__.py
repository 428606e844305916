"""Command-line tools built on the operator's own core: `ecsrole diff` and `ecsrole import`.

They decide nothing of their own: the spec parser, desired state, ownership rules, diff and
plan are the operator's, so what the tools print is what the operator would do. Nothing here
imports kopf, and the AWS side is read-only by construction (see `ecsrole.aws.readonly`).
"""

"""The pure core: desired state, semantic diff, plans and ownership rules, with no I/O.

Everything here is a function of its arguments (no boto3, no kopf, no clock, no environment),
so the rules that decide what is drift and which IAM calls run can be tested exhaustively and
property-tested, and the shell around them stays thin (DESIGN section 6).
"""

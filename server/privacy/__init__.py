"""Privacy accounting: the accountant, the ledger, the audit log, label releases, caps.

Also the empirical privacy audit (canaries, one-run lower bound on ε).
"""

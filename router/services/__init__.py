"""Admin operations: keys, team budgets, prices, usage and reconciliation.

Each service owns its whole operation, the cache step included (a disabled key leaves this
replica's key cache, new team budgets leave the accountant's, a new price enters the price
book), so the admin API and the CLI call the same code and neither can forget a step.
They raise the errors in router.errors (404 for what does not exist, 503 when the store
cannot be reached), which the admin API renders and the CLI prints.
"""

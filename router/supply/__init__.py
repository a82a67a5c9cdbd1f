"""Supply of each backend: shared circuit breakers, capacity caps and provider quotas.

Kept free of imports so `router.config` can load the settings module without the rest.
"""

"""Queries the hub's routers and pages run, one module per resource, with their output models.

Routers stay thin (validate, authorise, audit, call the core); the SQL lives here.
"""

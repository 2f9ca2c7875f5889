"""Query modules: the SQL of one hub resource each, with its output models beside it.

Routers stay thin (validate, authorise, audit, call the core); the SQL lives here.
"""

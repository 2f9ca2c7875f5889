"""Query modules: the SQL of one hub resource each, with its output models beside it."""

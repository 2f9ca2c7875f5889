"""`vward` sub-commands that belong to `ward` itself (migrate, demo, users)."""

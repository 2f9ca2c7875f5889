"""One router per resource; each route names the roles it admits (`ward.hub.deps.allow`)."""

"""Read queries and their output models, one module per resource (as in the FastAPI
full-stack template's crud/models split): routers validate, authorise, audit and answer;
the SQL that reads a resource (and the odd write `ward.db.registry` lacks) lives here, so routers never import each other's internals."""

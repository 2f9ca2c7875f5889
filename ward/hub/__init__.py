"""The ward hub: FastAPI API, live dashboard and reports (sits on top of everything)."""

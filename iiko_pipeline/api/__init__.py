"""The platform's HTTP API for integrations (`iiko-pipeline api`): connect, sync, status, disconnect.

    from iiko_pipeline.api import ApiServer, create_app
    app = create_app(instance=instance, engine=engine, keyring=keyring, api_token=token)
    with ApiServer(app) as server:      # uvicorn on a background thread, a free port
        server.url                      # "http://127.0.0.1:PORT"

Routes, status codes and bodies: `iiko_pipeline/api/openapi.py` (served at /openapi.json).
"""

from iiko_pipeline.api.app import create_app
from iiko_pipeline.api.security import API_TOKEN_ENV, InsecureConfigError, check_token
from iiko_pipeline.api.server import ApiServer, serve

__all__ = ["API_TOKEN_ENV", "ApiServer", "InsecureConfigError", "check_token", "create_app", "serve"]

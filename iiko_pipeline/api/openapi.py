"""The OpenAPI 3.1 description served at /openapi.json (hand-written: Starlette has no schema generator).

Tests check that every route of the app appears here with its methods, and that the answers they observe
are documented, so keep it in step with `app.py`. The one sync route, `.../sync/{entity}`, is documented as one
path per entity of `core.specs.REGISTRY`, so that each says exactly what it accepts: only dated (`windowed`)
entities take `from`/`to` (query or body); the others take no parameters and no body.
"""

from __future__ import annotations

from typing import Any

from iiko_pipeline.core.specs import ENTITY_NAMES as ENTITIES
from iiko_pipeline.core.specs import REGISTRY, EntitySpec, windowed_specs

PREFIX = "/api/v1/accounts/{account_id}/integrations/iiko"

_ACCOUNT_PARAM = {"name": "account_id", "in": "path", "required": True, "description": "The account's UUID.",
                  "schema": {"type": "string", "format": "uuid"}}
_DATED = " and ".join(s.name for s in windowed_specs()).capitalize()
#: The dated entities' range, described once for the JSON body and the query parameters.
_FROM_DOC = "First document date (YYYY-MM-DD), not after `to` (or today)."
_TO_DOC = "Last document date (YYYY-MM-DD); default today."
_FROM_EXAMPLE, _TO_EXAMPLE = "2024-01-01", "2024-01-31"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_COMMON = {
    "400": _error("Malformed request: invalid JSON, credentials in the query string (never processed), or, in "
                  "the insecure local mode (no token), a Host header that is not a loopback name or address."),
    "401": _error("Missing or wrong bearer token."),
}
_VALIDATION = {"422": _json(_ref("ValidationError"), "A parameter or field is invalid; `errors` names each.")}
_NOT_FOUND = {"404": _error("No iiko credentials are stored for this account.")}
_BUSY = {"409": _error("A sync of this account is already running (in this API or elsewhere).")}
_DISABLED = {"503": _error("Integrations are switched off (INTEGRATIONS_ENABLED=false).")}
_BODY_ERRORS = {
    "413": _error("Request body larger than 64 KiB."),
    "415": _error("Request body sent without Content-Type: application/json."),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["detail"],
        "properties": {"detail": {"type": "string", "description": "What went wrong and what to do."}},
    },
    "ValidationError": {
        "type": "object", "required": ["detail", "errors"],
        "properties": {
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {
                "type": "object", "required": ["field", "location", "reason"],
                "properties": {"field": {"type": "string"},
                               "location": {"type": "string", "enum": ["path", "query", "body"]},
                               "reason": {"type": "string"}}}},
        },
    },
    "ConnectRequest": {
        "type": "object", "required": ["username", "password"], "additionalProperties": False,
        "properties": {
            "username": {"type": "string", "minLength": 1, "maxLength": 256},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024, "writeOnly": True,
                         "description": "Accepted only here, never in the URL; stored encrypted, never logged."},
            "base_url": {"type": ["string", "null"], "format": "uri",
                         "description": "The iiko server URL, e.g. https://iiko.example (a trailing "
                                        "/resto/api is removed). Required unless the operator set "
                                        "IIKO_DEFAULT_BASE_URL; https only (plain http for loopback hosts, "
                                        "with allow_http true, or with IIKO_ALLOW_HTTP=true), and within "
                                        "IIKO_ALLOWED_HOSTS when set. A refused URL answers 422 naming base_url, "
                                        "before any request."},
            "allow_http": {"type": "boolean", "default": False,
                           "description": "This account's explicit opt-in to plain http to a host that is not "
                                          "loopback (the login and the password's SHA-1 then cross the network "
                                          "unencrypted). Stored with the account: every sync checks its URL the "
                                          "same way. Does not lift IIKO_ALLOWED_HOSTS. Strictly a JSON boolean; "
                                          "anything else answers 422 naming allow_http."},
        },
        "example": {"username": "your-iiko-username", "password": "your-iiko-password",
                    "base_url": "https://iiko.example"},
    },
    "ConnectResponse": {
        "type": "object",
        "required": ["account_id", "is_connected", "last_connected_at", "connection_error", "integration_type"],
        "properties": {
            "account_id": {"type": "string", "format": "uuid"},
            "is_connected": {"type": "boolean"},
            "last_connected_at": {"type": ["string", "null"], "format": "date-time"},
            "connection_error": {"type": ["string", "null"]},
            "integration_type": {"type": "string", "const": "iiko"},
        },
        "example": {"account_id": "3f2b8c1e-5d6a-4b7c-9e8f-0a1b2c3d4e5f", "is_connected": True,
                    "last_connected_at": "2023-06-29T12:00:00Z", "connection_error": None,
                    "integration_type": "iiko"},
    },
    "SyncRequest": {
        "type": "object", "additionalProperties": False,
        "description": f"{_DATED} only: the document dates to export (the same may be given as query "
                       "parameters `from` and `to`, but not both ways). Other entities take no body.",
        "properties": {"from": {"type": ["string", "null"], "format": "date",
                                "description": _FROM_DOC},
                       "to": {"type": ["string", "null"], "format": "date",
                              "description": _TO_DOC}},
        "example": {"from": _FROM_EXAMPLE, "to": _TO_EXAMPLE},
    },
    "SyncResult": {
        "type": "object", "required": ["total", "created", "updated", "errors", "error_details", "run_id"],
        "properties": {
            "total": {"type": "integer"}, "created": {"type": "integer"}, "updated": {"type": "integer"},
            "errors": {"type": "integer"},
            "error_details": {"type": "array", "items": {"type": "object"},
                              "description": "Records not stored (counted in `errors`), then records stored "
                                             "with a caveat, marked `\"stored\": true` (e.g. an invoice line "
                                             "whose product is not synced yet)."},
            "skipped": {"type": "string", "description": "Set when an optional entity was not read: the iiko "
                                                         "version lacks it, or the iiko user may not read it."},
            "run_id": {"type": "string", "description": "The Dagster run (visible in the Dagster UI)."},
        },
        "example": {"total": 10, "created": 5, "updated": 5, "errors": 0, "error_details": [],
                    "run_id": "b5b0c7a4-3c3e-4a55-8a61-0f8f3f1d2f6e"},
    },
    "SyncFailure": {
        "type": "object", "required": ["detail", "run_id"],
        "properties": {"detail": {"type": "string"}, "run_id": {"type": "string"}},
    },
    "EntityState": {
        "type": "object",
        "properties": {"last_success_at": {"type": ["string", "null"], "format": "date-time"},
                       "last_run_id": {"type": ["string", "null"]},
                       "last_error": {"type": ["string", "null"]},
                       "watermark": {"type": ["string", "null"], "format": "date"}},
    },
    "IntegrationStatus": {
        "type": "object",
        "required": ["account_id", "integration_type", "is_connected", "last_connected_at", "connection_error",
                     "base_url", "allow_http", "sync_running", "entities"],
        "properties": {
            "account_id": {"type": "string", "format": "uuid"},
            "integration_type": {"type": "string", "const": "iiko"},
            "is_connected": {"type": "boolean"},
            "last_connected_at": {"type": ["string", "null"], "format": "date-time"},
            "connection_error": {"type": ["string", "null"]},
            "base_url": {"type": ["string", "null"]},
            "allow_http": {"type": "boolean", "description": "Whether the account was connected with the opt-in "
                                                              "to plain http (`allow_http`)."},
            "sync_running": {"type": "boolean"},
            "running_run_id": {"type": ["string", "null"]},
            "entities": {"type": "object", "additionalProperties": _ref("EntityState"),
                         "description": f"Last sync per entity: {', '.join(ENTITIES)}."},
        },
    },
    "Disconnected": {
        "type": "object", "required": ["account_id", "integration_type", "is_connected", "disconnected"],
        "properties": {"account_id": {"type": "string", "format": "uuid"},
                       "integration_type": {"type": "string", "const": "iiko"},
                       "is_connected": {"type": "boolean", "const": False},
                       "disconnected": {"type": "boolean", "const": True}},
    },
    "Health": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
    "SyncStarted": {
        "type": "object", "required": ["run_id", "status", "status_url"],
        "properties": {"run_id": {"type": "string", "format": "uuid"}, "status": {"type": "string"},
                       "status_url": {"type": "string", "description": "GET it for the run's status and result."}},
    },
    "RunStatus": {
        "type": "object", "required": ["run_id", "account_id", "status", "done"],
        "properties": {
            "run_id": {"type": "string", "format": "uuid"}, "account_id": {"type": "string", "format": "uuid"},
            "entity": {"type": ["string", "null"]},
            "status": {"type": "string", "description": "STARTING, QUEUED, STARTED, SUCCESS, FAILURE, CANCELED, ..."},
            "done": {"type": "boolean"},
            "http_status": {"type": "integer", "description": "Once done: what the synchronous call answered."},
            "result": {**_ref("SyncResult"), "description": "Once done and successful: the brief's sync result."},
            "error": {**_ref("SyncFailure"), "description": "Once done and failed: why."},
        },
    },
}


def _sync_operation(entity: EntitySpec) -> dict[str, Any]:
    """POST .../sync/<entity>: `from`/`to` (query or body) for a dated entity; nothing for the others."""
    parameters: list[dict[str, Any]] = [_ACCOUNT_PARAM]
    operation: dict[str, Any] = {
        "operationId": "sync" + "".join(part.capitalize() for part in entity.name.split("_")),
        "summary": f"Sync {entity.name} now, as a Dagster run; answers when it ends (or at once with "
                   "`Prefer: respond-async`)",
        "parameters": parameters,
    }
    if entity.windowed:
        parameters += [
            {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
             "example": _FROM_EXAMPLE, "description": _FROM_DOC},
            {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
             "example": _TO_EXAMPLE, "description": _TO_DOC},
        ]
        operation["description"] = ("The document dates may be given as query parameters or in a JSON body, "
                                    "not both ways.")
        operation["requestBody"] = {"required": False,
                                    "content": {"application/json": {"schema": _ref("SyncRequest")}}}
    else:
        operation["description"] = (f"Takes no query parameters and no body (only {_DATED.lower()} take "
                                    "`from`/`to`; anything else answers 422).")
    operation["responses"] = {
        "200": _json(_ref("SyncResult"), "The brief's sync result plus the Dagster run id."),
        "202": _json(_ref("SyncStarted"), "With `Prefer: respond-async`: the run started; follow "
                                          "`status_url` (also in `Location`)."),
        "500": _json(_ref("SyncFailure"), "The run failed for a reason other than iiko."),
        "502": _json(_ref("SyncFailure"), "The run failed because of iiko (the connection error)."),
        **_COMMON, **_NOT_FOUND, **_VALIDATION, **_BODY_ERRORS, **_DISABLED,
        "409": _json(_ref("SyncFailure"),
                     "A sync of this account is already running (`run_id` names it), or the run stored "
                     "too little of what iiko returned (every record, or more than half, rejected: "
                     "`detail` says why, e.g. reference data missing; the brief's counts are included)."),
    }
    return operation


def spec() -> dict[str, Any]:
    secured = [{"bearerAuth": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "iiko-pipeline integration API", "version": "1.0.0",
                 "description": "Connect an account's iiko Server and sync it into the warehouse. Every sync is "
                                "a Dagster run (tag `iiko/account`) shown in the Dagster UI. Every endpoint but "
                                "/health needs `Authorization: Bearer <API_TOKEN>`."},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": _SCHEMAS,
        },
        "security": secured,
        "paths": {
            "/health": {"get": {
                "operationId": "health", "summary": "Liveness (no token needed)", "security": [],
                "responses": {"200": _json(_ref("Health"), "The API is up.")},
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {}}},
                              **_COMMON},
            }},
            f"{PREFIX}/connect": {"post": {
                "operationId": "connect", "summary": "Log in to iiko once; store the credentials encrypted",
                "parameters": [_ACCOUNT_PARAM],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ConnectRequest")}}},
                "responses": {
                    "200": _json(_ref("ConnectResponse"), "Connected; credentials stored."),
                    "502": _json(_ref("ConnectResponse"), "iiko refused the login or could not be reached: "
                                                          "`is_connected` false, `connection_error` says why; "
                                                          "nothing stored, working credentials kept."),
                    **_COMMON, **_VALIDATION, **_BODY_ERRORS, **_DISABLED,
                },
            }},
            **{f"{PREFIX}/sync/{entity.name}": {"post": _sync_operation(entity)} for entity in REGISTRY},
            f"{PREFIX}/runs/{{run_id}}": {"get": {
                "operationId": "runStatus", "summary": "A sync run's status and, once done, its result",
                "parameters": [_ACCOUNT_PARAM, {"name": "run_id", "in": "path", "required": True,
                                                "schema": {"type": "string", "format": "uuid"}}],
                "responses": {"200": _json(_ref("RunStatus"), "The run (STARTING while its process starts)."),
                              **_COMMON, **_VALIDATION,
                              "404": _error("The account has no such run.")},
            }},
            PREFIX: {
                "parameters": [_ACCOUNT_PARAM],
                "get": {
                    "operationId": "status", "summary": "Connection status and last sync per entity",
                    "responses": {"200": _json(_ref("IntegrationStatus"), "The account's integration."),
                                  **_COMMON, **_NOT_FOUND, **_VALIDATION},
                },
                "delete": {
                    "operationId": "disconnect", "summary": "Remove the credentials (synced data is kept)",
                    "responses": {"200": _json(_ref("Disconnected"), "Credentials removed."),
                                  **_COMMON, **_NOT_FOUND, **_BUSY, **_VALIDATION},
                },
            },
        },
    }

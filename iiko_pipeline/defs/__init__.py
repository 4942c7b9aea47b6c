"""Layer 5: Dagster definitions. Thin wiring of the client, adapters and warehouse; no business logic here."""

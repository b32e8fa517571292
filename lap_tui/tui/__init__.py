"""The Textual UI: screens and widgets only. Services (store, engine, sandboxes, gateway) are injected."""

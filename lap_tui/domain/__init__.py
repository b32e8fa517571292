"""Pure domain model: dataclasses, validation and state machines. No I/O, no Textual."""

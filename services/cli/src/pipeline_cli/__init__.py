"""The `pipeline` operator CLI: read, trace, replay and repair the event streams."""

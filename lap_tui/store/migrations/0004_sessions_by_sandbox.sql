-- lap-tui schema, version 4: sessions by their sandbox, so finding the sandboxes no session
-- uses any more (orphans, listed every second by the Sandboxes view) is an index lookup per
-- sandbox, not a scan of every session.
CREATE INDEX sessions_by_sandbox ON sessions (sandbox_ref);

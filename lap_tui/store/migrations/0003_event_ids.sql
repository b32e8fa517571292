-- lap-tui schema, version 3: a client-chosen id for every journal event, unique, so an append
-- whose commit reply was lost (the connection dropped after COMMIT) is retried without writing
-- the event twice: the retry finds the id and returns that event's seq. Older events have none.
ALTER TABLE events ADD COLUMN event_id TEXT;
CREATE UNIQUE INDEX events_by_event_id ON events (event_id);

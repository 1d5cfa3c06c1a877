-- Each relay checkpoint names the chain of messages its relay publishes
-- (the `Orders-Relay-Chain` header of every message, docs/EVENTS.md) and
-- remembers the JetStream sequence of the last message acknowledged with
-- the checkpoint. A relay that starts or takes over reads the stream after
-- that sequence for messages of its chain: those ahead of the checkpoint
-- (acknowledged, but the checkpoint's write was lost) are not published
-- again, however long ago they were, so exactly-once no longer rests on
-- the broker's de-duplication window. `chain` is set by the relay when it
-- first takes the checkpoint (NULL until then: no message names it yet).
ALTER TABLE relay_checkpoints
    ADD COLUMN chain uuid,
    ADD COLUMN stream_sequence bigint NOT NULL DEFAULT 0;

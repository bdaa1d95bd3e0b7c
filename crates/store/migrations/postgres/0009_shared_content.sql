-- Content stages of a destination that are byte-for-byte another stage of the same message
-- (a set of flags, see store::Shared): 1 ENCODED is TRANSFORMED, 2 ENCODED is RAW, 4 SENT is
-- ENCODED. Such a stage has no message_content row of its own; readers resolve it.
ALTER TABLE message_destinations ADD COLUMN shared smallint NOT NULL DEFAULT 0;

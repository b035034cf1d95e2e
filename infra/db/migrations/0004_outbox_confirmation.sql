-- An outbox row is done only when its workflow has recorded the part, not when Temporal answered the dispatch: the
-- dev server keeps its SQLite file with synchronous=OFF, so an OS crash can lose a start or a signal it had already
-- acknowledged. The lot case sets confirmed_at as it records arriving parts; a dispatched row still
-- unconfirmed after outbox.confirmationGrace is sent again (docs/reliability.md#outbox).
ALTER TABLE holdfast.outbox
  ADD COLUMN confirmed_at  timestamptz,
  -- How often the reconciler found the row dispatched but never recorded, and sent it again.
  ADD COLUMN redispatches  integer NOT NULL DEFAULT 0;

-- Rows from before this migration were all started the old way and have nothing left to confirm.
UPDATE holdfast.outbox SET confirmed_at = dispatched_at WHERE dispatched_at IS NOT NULL;

CREATE INDEX outbox_unconfirmed_idx ON holdfast.outbox (dispatched_at)
  WHERE dispatched_at IS NOT NULL AND confirmed_at IS NULL;

-- A real recall's requester signs it (docs/e-signatures.md, docs/recall.md#routes): the sealed manifest, as a
-- disposition's is kept, checked against the recall's row whenever the recall is read.
ALTER TABLE holdfast.recall ADD COLUMN signature jsonb;

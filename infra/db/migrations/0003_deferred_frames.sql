-- Frames whose image, named by reference, could not be read yet (the image server down or slow). The frame is kept
-- here and acknowledged to the broker, so the stream goes on; the worker inspects it again until its image is read.
-- One row per inspection event: a frame delivered twice is deferred once.
CREATE TABLE holdfast.frame_deferred (
  event_id        text PRIMARY KEY,
  topic           text NOT NULL,
  payload         bytea NOT NULL,
  deferred_at     timestamptz NOT NULL DEFAULT now(),
  attempts        integer NOT NULL DEFAULT 1,
  next_attempt_at timestamptz NOT NULL,
  last_error      text NOT NULL
);
CREATE INDEX frame_deferred_due_idx ON holdfast.frame_deferred (next_attempt_at);

-- Scheduled mock-recall drills (docs/recall.md#drills): one row per drill, opened when its workflow starts and
-- completed with its result; the mock recall it ran is a holdfast.recall row like any other, linked by recall_id.

CREATE TABLE holdfast.recall_drill (
  -- recallDrillId(): the site and the time the drill was due, so a drill run again for the same time is the same row.
  drill_id            text PRIMARY KEY,
  site                text NOT NULL,
  schedule_id         text NOT NULL,
  workflow_id         text NOT NULL,
  scheduled_at        timestamptz NOT NULL,
  recall_id           text UNIQUE REFERENCES holdfast.recall (recall_id),
  state               text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'passed', 'overdue', 'failed')),
  complete_within_ms  bigint NOT NULL,
  -- Workflow time from the drill's start to its result.
  duration_ms         bigint,
  -- Why it failed before its recall could run (no supplier lot to recall, a scope the genealogy does not know).
  error               text,
  -- The scope the drill picked, kept so a drill run again recalls the same one whatever the genealogy gained since.
  scope               jsonb,
  -- Each escalation sent: [{ reason, target, text, at }]; a reason is sent once per drill.
  escalations         jsonb NOT NULL DEFAULT '[]'::jsonb,
  started_at          timestamptz NOT NULL DEFAULT now(),
  completed_at        timestamptz,
  UNIQUE (site, scheduled_at)
);

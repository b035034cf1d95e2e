-- The W3C trace context (traceparent) of the request that stored an outbox row. The dispatcher starts the row's
-- workflow later, from another process and transaction: with this, the start continues the request's trace instead
-- of beginning a new one. NULL when tracing is off.
ALTER TABLE holdfast.outbox ADD COLUMN traceparent text;

/**
 * Temporal Schedules that follow temporal.yaml: each worker start creates a configured schedule or brings the existing
 * one to the configuration, and deletes one whose configuration is gone, so the Web UI's Schedules page shows what the
 * file says.
 */
import { ScheduleAlreadyRunning, ScheduleNotFoundError, type Client, type ScheduleOptions } from '@temporalio/client';

/**
 * Creates the schedule, or updates the existing one's spec, action and (where given) policies and note, keeping the
 * rest of its state (paused or not, remaining actions). Answers which of the two it did.
 */
export async function upsertSchedule(client: Client, options: ScheduleOptions): Promise<'created' | 'updated'> {
  try {
    await client.schedule.create(options);
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const note = options.state?.note;
  await client.schedule.getHandle(options.scheduleId).update((previous) => ({
    ...previous,
    spec: options.spec,
    action: options.action,
    ...(options.policies ? { policies: options.policies } : {}),
    ...(note !== undefined ? { state: { ...previous.state, note } } : {}),
  }));
  return 'updated';
}

/** Deletes the schedule; one that does not exist is already what the configuration asks for. */
export async function deleteScheduleIfAny(client: Client, scheduleId: string): Promise<void> {
  await client.schedule
    .getHandle(scheduleId)
    .delete()
    .catch((err: unknown) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    });
}

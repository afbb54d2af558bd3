/**
 * reboot.window arithmetic on the local wall clock: "HH:MM" start and end, an end before the start
 * crossing midnight (22:00-04:00), equal ones meaning the whole day. Local times are compared as
 * the clock reads them (getHours/getMinutes), and the next opening is found with local setters,
 * so a daylight-saving change moves the window with the clock instead of shifting it by an hour.
 */
import type { RebootConfig } from '@pullnix/shared';

/** Minutes after local midnight of an "HH:MM" (validated by the config schema). */
export function minutesOf(hhmm: string): number {
  const m = /^(\d{2}):(\d{2})$/.exec(hhmm);
  if (!m) throw new Error(`not a local time HH:MM: ${JSON.stringify(hhmm)}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** Whether the local time of `at` is inside the window (start inclusive, end exclusive). */
export function inWindow(window: RebootConfig['window'], at: Date): boolean {
  const start = minutesOf(window.start);
  const end = minutesOf(window.end);
  const now = at.getHours() * 60 + at.getMinutes();
  if (start === end) return true;
  return start < end ? now >= start && now < end : now >= start || now < end;
}

/** When the window next opens after `at` (at itself when it is open now). */
export function nextWindowOpening(window: RebootConfig['window'], at: Date): Date {
  if (inWindow(window, at)) return new Date(at.getTime());
  const start = minutesOf(window.start);
  const candidate = new Date(at.getTime());
  candidate.setHours(Math.floor(start / 60), start % 60, 0, 0);
  // Later today, else the same local time tomorrow (setDate keeps the wall-clock time across DST).
  if (candidate.getTime() <= at.getTime()) {
    candidate.setDate(candidate.getDate() + 1);
    candidate.setHours(Math.floor(start / 60), start % 60, 0, 0);
  }
  return candidate;
}

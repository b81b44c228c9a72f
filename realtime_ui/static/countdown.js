// Deadlines as working time left (剩余 2 小时 30 分) or overdue (已超时 1 小时 5 分).
//
// The working-time calendar comes from the server (GET /api/calendar: the city's zone, the daily work
// periods and the exception days of a bounded window); workingSecondsBetween() is the browser twin of
// hub/core/workcal.py WorkCalendar.working_seconds_between and is tested against it
// (tests/ui/test_ui_board.py). One timer for the page moves `minuteNow` once a minute; every
// <Countdown> reads it, so all of them re-render together and nothing else does.
//
//   import { Countdown, loadCalendar } from "./countdown.js";
//   await loadCalendar();
//   html`<${Countdown} deadline=${c.deadline} limitSeconds=${limitSecondsFor(category)} />`
import { api } from "./api.js";
import { zonedParts } from "./dom.js";
import { html, signal } from "./ui.js";

/** Yellow (将超时) when less than this share of the time limit is left. The one place it is set. */
export const WARN_SHARE = 0.25;

/** The calendar from GET /api/calendar (null until loaded). */
export const calendarSignal = signal(null);
/** Now, moved once a minute (at the minute's turn) for every Countdown on the page. */
export const minuteNow = signal(Date.now());

let loading = null;

/** Fetch the calendar once per page (later calls share the answer). */
export function loadCalendar() {
  if (!loading) {
    loading = api("/api/calendar").then(
      (cal) => {
        calendarSignal.value = cal;
        return cal;
      },
      (err) => {
        loading = null;
        throw err;
      },
    );
  }
  return loading;
}

let ticking = false;
function startTicking() {
  if (ticking || typeof window === "undefined") return;
  ticking = true;
  const tick = () => {
    minuteNow.value = Date.now();
    setTimeout(tick, 60_000 - (Date.now() % 60_000) + 50);
  };
  setTimeout(tick, 60_000 - (Date.now() % 60_000) + 50);
}

// ---- the arithmetic (pure) ---------------------------------------------------------------------

const DAY_MS = 86_400_000;
/** The wall-clock time of an instant in `tz`, as milliseconds of a UTC-labelled "naive" time. */
function wallMs(instant, tz) {
  const ms = instant instanceof Date ? instant.getTime() : typeof instant === "number" ? instant : Date.parse(instant);
  const p = zonedParts(new Date(ms), tz);
  const whole = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return whole + (((ms % 1000) + 1000) % 1000);
}

function clockMs(hhmm) {
  const [h, m] = String(hhmm).split(":").map(Number);
  return (h * 60 + m) * 60_000;
}

function periodsOf(cal) {
  return (cal.periods || []).map(([s, e]) => [clockMs(s), clockMs(e)]);
}

/** Whether a naive day (ms at its midnight) is worked: the exception table, else Monday-Friday. */
function isWorkday(cal, dayMs) {
  const iso = new Date(dayMs).toISOString().slice(0, 10);
  const ex = cal.exceptions || {};
  if (Object.prototype.hasOwnProperty.call(ex, iso)) return !!ex[iso];
  const wd = new Date(dayMs).getUTCDay();
  return wd >= 1 && wd <= 5;
}

/** Working seconds in one whole working day. */
export function dayLengthSeconds(cal) {
  return periodsOf(cal).reduce((sum, [s, e]) => sum + (e - s), 0) / 1000;
}

/**
 * Working seconds from instant a to instant b (0 when b <= a): only time inside the work periods of
 * working days counts, on the city's wall clock (WorkCalendar.working_seconds_between).
 */
export function workingSecondsBetween(cal, a, b) {
  const tz = cal.timezone;
  const la = wallMs(a, tz);
  const lb = wallMs(b, tz);
  if (lb <= la) return 0;
  const periods = periodsOf(cal);
  let total = 0;
  for (let day = Math.floor(la / DAY_MS) * DAY_MS; day <= lb; day += DAY_MS) {
    if (!isWorkday(cal, day)) continue;
    for (const [ps, pe] of periods) {
      const begin = Math.max(la, day + ps);
      const end = Math.min(lb, day + pe);
      if (end > begin) total += end - begin;
    }
  }
  return total / 1000;
}

/** The working seconds of a category's time limit ({value, unit}), or the server's default. */
export function limitSecondsFor(timeLimit, cal = calendarSignal.value) {
  if (!cal) return null;
  if (timeLimit && timeLimit.value > 0) {
    if (timeLimit.unit === "hours") return timeLimit.value * 3600;
    if (timeLimit.unit === "days") return timeLimit.value * dayLengthSeconds(cal);
  }
  return cal.default_time_limit_hours ? cal.default_time_limit_hours * 3600 : null;
}

/** "2 小时 30 分", "45 分", "不足 1 分". */
export function fmtWorkingDuration(seconds) {
  const minutes = Math.floor(seconds / 60);
  if (minutes < 1) return "不足 1 分";
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  if (!h) return `${m} 分`;
  return m ? `${h} 小时 ${m} 分` : `${h} 小时`;
}

/**
 * The countdown of a deadline at `now`: {level: "ok"|"warn"|"over", seconds, text}.
 * warn: less than WARN_SHARE of limitSeconds left (no limit known: never warn).
 */
export function countdownOf(cal, deadline, now, limitSeconds = null) {
  const due = Date.parse(deadline);
  const at = now instanceof Date ? now.getTime() : now;
  if (at >= due) {
    const late = workingSecondsBetween(cal, due, at);
    return { level: "over", seconds: late, text: `已超时 ${fmtWorkingDuration(late)}` };
  }
  const left = workingSecondsBetween(cal, at, due);
  const warn = typeof limitSeconds === "number" && limitSeconds > 0 && left < limitSeconds * WARN_SHARE;
  return { level: warn ? "warn" : "ok", seconds: left, text: `剩余 ${fmtWorkingDuration(left)}` };
}

// ---- the component -----------------------------------------------------------------------------

/**
 * <Countdown deadline=ISO limitSeconds=n calendar=cal? />: the working time left, yellow before the
 * limit, red when overdue; re-renders once a minute. Without a calendar (not loaded yet) it renders
 * nothing.
 */
export function Countdown({ deadline, limitSeconds = null, calendar = null }) {
  startTicking();
  const cal = calendar || calendarSignal.value;
  const now = minuteNow.value;
  if (!cal || !deadline) return null;
  const cd = countdownOf(cal, deadline, now, limitSeconds);
  return html`<span
    class=${`countdown countdown-${cd.level}`}
    data-testid="countdown"
    data-level=${cd.level}
    title="按工作时间计算"
    >${cd.text}</span
  >`;
}

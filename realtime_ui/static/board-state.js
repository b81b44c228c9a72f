// The board's shared state (board.js and its modules): the signed-in user with the reference data
// (ctx, also handed to detail.js and report.js) and the signals more than one part reads.
import { signal } from "./ui.js";

/** Shared by the modules: the signed-in user and the reference data. */
export const ctx = {
  user: null,
  categories: [],
  departments: [],
  grids: [],
  categoryById: new Map(),
  departmentById: new Map(),
};

/** The selected case id (null: none). */
export const selected = signal(null);
/** A list request is in flight (true until the first answer). */
export const listLoading = signal(true);
/** The server's state groups (open, deadline, terminal) from GET /api/queues. */
export const groups = signal({ open: [], deadline: [], terminal: [] });
/** This user's queues with counts ({name, label, states, count, fresh}). */
export const queues = signal([]);
/** The latest announcement of new work (text), or "". */
export const queueNotice = signal("");
/** Rows to flash: id -> "new" | "changed". */
export const flashes = signal(new Map());
/** The reference data the selects offer (loaded once). */
export const refData = signal({ categories: [], departments: [], grids: [] });

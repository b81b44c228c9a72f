// The board's detail pane (detail.js) wired to the list: selecting a case opens it (and writes the
// address), a change made in it updates the row, a case that left the user's scope goes; Escape
// closes it.
import { cases } from "./board-list.js";
import { writeUrl } from "./board-filters.js";
import { refreshQueues } from "./board-queues.js";
import { ctx, selected } from "./board-state.js";
import { createDetail } from "./detail.js";

export const detail = createDetail({
  ctx,
  pane: document.getElementById("detail-pane"),
  onChanged: (c) => {
    if (c && c.visible === false) ctx.onCaseGone(c.id, c.message);
    else cases.apply(c);
  },
  onClose: () => selectCase(null),
});

/**
 * The agreed way for the detail pane to say a case left this user's scope (a department returned
 * it): the row and its count go; the detail says what happened.
 */
ctx.onCaseGone = (caseId, _message) => {
  cases.remove(caseId);
  refreshQueues();
};

export function selectCase(id, { fromUrl = false } = {}) {
  selected.value = id;
  document.body.classList.toggle("detail-open", id !== null);
  if (id === null) detail.close();
  else detail.open(id);
  if (!fromUrl) writeUrl();
}

document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && selected.peek() !== null && !document.querySelector("dialog[open]")) {
    selectCase(null);
  }
});

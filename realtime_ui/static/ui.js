// The pages' component kit: Preact components written with htm tagged templates (no build step,
// no JSX) and signals for state. Every page module imports from here, never from vendor/ directly,
// so the library can be updated in one place (scripts/vendor-js.sh, vendor/README.md).
import { Fragment, createContext, h, render } from "./vendor/preact.mjs";
import htm from "./vendor/htm.mjs";

export {
  useCallback,
  useContext,
  useEffect,
  useLayoutEffect,
  useMemo,
  useRef,
  useState,
} from "./vendor/hooks.mjs";
export {
  batch,
  computed,
  effect,
  signal,
  useComputed,
  useSignal,
  useSignalEffect,
} from "./vendor/signals.mjs";

/** html`<div class=${cls}>${children}</div>`: a Preact element tree from a tagged template. */
export const html = htm.bind(h);
export { Fragment, createContext, h, render };

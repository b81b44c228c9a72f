// The console's ring: a soft beep (WebAudio, no audio files) while this agent's phone
// rings and the page is not answering yet.
//
// Theory of operation: followRing() runs an effect on the agent's state: `offered` with no answer
// under way starts one oscillator behind a gain that opens for 0.4 s every 1.5 s; anything else
// stops it and closes the AudioContext. A browser without WebAudio (or one that refuses it) rings
// silently: the 来电 banner is the signal that counts.
import { callPhase } from "./hotline-call.js";
import { mine } from "./hotline-state.js";
import { effect } from "./ui.js";

let ring = null;

function start() {
  const ctx = new AudioContext();
  const gain = ctx.createGain();
  const osc = ctx.createOscillator();
  osc.frequency.value = 480;
  gain.gain.value = 0;
  osc.connect(gain).connect(ctx.destination);
  osc.start();
  const beep = () => {
    const at = ctx.currentTime;
    gain.gain.setValueAtTime(0.06, at);
    gain.gain.setValueAtTime(0, at + 0.4);
  };
  beep();
  return { ctx, timer: setInterval(beep, 1500) };
}

function stop() {
  clearInterval(ring.timer);
  ring.ctx.close().catch(() => {});
  ring = null;
}

export function followRing() {
  return effect(() => {
    const ringing = mine.value.state === "offered" && callPhase.value === "idle";
    if (ringing && !ring) {
      try {
        ring = start();
      } catch {
        ring = null; // no WebAudio: the banner alone
      }
    } else if (!ringing && ring) stop();
  });
}

// Coalesces keys from any number of tabs into batches: a short window after the last new key (a
// page loading images one by one keeps it open), never longer than `maxWaitMs` after the first, at
// most `max` keys per batch, each key once (queued or in flight). With `holdMs`, a partial batch also
// waits while another is out (up to `holdMs` after its first key): a page whose images trickle in
// then makes one request per answer, not one per window. Timers are injected for tests.

export class Batcher {
  constructor({ run, windowMs = 150, maxWaitMs = windowMs, max = 100, holdMs = 0, setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (id) => clearTimeout(id), now = () => Date.now(), onIdle = () => {} }) {
    this.run = run;
    this.onIdle = onIdle; // the last batch out has returned and nothing is queued
    this.windowMs = windowMs;
    this.maxWaitMs = Math.max(windowMs, maxWaitMs);
    this.now = now;
    this.firstAt = 0;
    this.max = max;
    this.holdMs = holdMs;
    this.held = false;
    this.setTimer = setTimer;
    this.clearTimer = clearTimer;
    this.queue = new Set();
    this.inFlight = new Set();
    this.timer = null;
    this.running = [];
  }

  /** Queue keys; returns how many were new (not already queued or in flight). */
  add(keys) {
    let added = 0;
    for (const key of keys) {
      if (this.queue.has(key) || this.inFlight.has(key)) continue;
      this.queue.add(key);
      added += 1;
    }
    // Full batches go at once; the rest waits for the window to fill up with other tabs' keys.
    this.send(this.max);
    if (!this.queue.size) return added;
    if (this.timer === null) this.firstAt = this.now();
    else if (added) this.clearTimer(this.timer);
    else return added;
    const left = this.firstAt + this.maxWaitMs - this.now();
    this.timer = this.setTimer(() => this.flush(), Math.max(0, Math.min(this.windowMs, left)));
    return added;
  }

  /** Send everything queued now, in batches of at most `max` (unless held: see `holdMs`; `now` overrides). */
  flush({ now = false } = {}) {
    if (this.timer !== null) {
      this.clearTimer(this.timer);
      this.timer = null;
    }
    const holdLeft = this.firstAt + this.holdMs - this.now();
    if (!now && this.queue.size && this.running.length && holdLeft > 0) {
      this.held = true; // sent when the batch out returns, or when the hold ends
      this.timer = this.setTimer(() => this.flush({ now: true }), holdLeft);
      return;
    }
    this.held = false;
    this.send(1);
  }

  /** Start a batch while at least `atLeast` keys are queued. */
  send(atLeast) {
    while (this.queue.size && this.queue.size >= atLeast) {
      const batch = [...this.queue].slice(0, this.max);
      for (const key of batch) {
        this.queue.delete(key);
        this.inFlight.add(key);
      }
      const done = Promise.resolve()
        .then(() => this.run(batch))
        .catch((error) => console.warn('Credence: batch failed', error))
        .finally(() => {
          for (const key of batch) this.inFlight.delete(key);
          this.running = this.running.filter((p) => p !== done);
          if (this.held && !this.running.length) this.flush({ now: true });
          if (!this.busy) this.onIdle();
        });
      this.running.push(done);
    }
  }

  /** Keys queued or a batch out: more answers are on their way. */
  get busy() {
    return this.queue.size > 0 || this.running.length > 0;
  }

  /** Resolves when every batch started so far has finished (tests, shutdown). */
  async idle() {
    while (this.running.length || this.timer !== null) {
      if (this.timer !== null) this.flush();
      await Promise.all(this.running);
    }
  }
}

/**
 * Poller (src/poll.ts): polls at once and then every interval while wanted and the page is in front, never
 * two ticks waiting at once; PollingWidget: polls while shown (Lumino's after-show / after-hide) only.
 * Fake timers drive the intervals; the page's visibility is document.visibilityState plus its event.
 */
import { Widget } from '@lumino/widgets';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { Poller, PollingWidget } from '../poll';

const INTERVAL = 1000;
let visibility: DocumentVisibilityState = 'visible';

function setVisibility(state: DocumentVisibilityState): void {
  visibility = state;
  document.dispatchEvent(new Event('visibilitychange'));
}

/** A tick that counts its calls and answers at once. */
function countingTick(): { tick: () => Promise<void>; calls: () => number } {
  let calls = 0;
  return {
    tick: () => {
      calls += 1;
      return Promise.resolve();
    },
    calls: () => calls
  };
}

beforeEach(() => {
  vi.useFakeTimers();
  visibility = 'visible';
  vi.spyOn(document, 'visibilityState', 'get').mockImplementation(() => visibility);
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Poller', () => {
  it('does not poll before start', () => {
    const { tick, calls } = countingTick();
    const poller = new Poller(tick, INTERVAL);
    vi.advanceTimersByTime(5 * INTERVAL);
    expect(calls()).toBe(0);
    expect(poller.running).toBe(false);
  });

  it('ticks once at start, then once per interval', async () => {
    const { tick, calls } = countingTick();
    const poller = new Poller(tick, INTERVAL);
    poller.start();
    expect(poller.running).toBe(true);
    expect(calls()).toBe(1);
    await vi.advanceTimersByTimeAsync(INTERVAL - 1);
    expect(calls()).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls()).toBe(2);
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(calls()).toBe(5);
    poller.stop();
  });

  it('stops ticking at stop, and a second start arms a single timer', async () => {
    const { tick, calls } = countingTick();
    const poller = new Poller(tick, INTERVAL);
    poller.start();
    poller.start();
    expect(calls()).toBe(1);
    await vi.advanceTimersByTimeAsync(2 * INTERVAL);
    expect(calls()).toBe(3);
    poller.stop();
    expect(poller.running).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10 * INTERVAL);
    expect(calls()).toBe(3);
  });

  it('uses the interval it has when it starts', async () => {
    const { tick, calls } = countingTick();
    const poller = new Poller(tick, INTERVAL);
    poller.intervalMs = 250;
    poller.start();
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls()).toBe(5);
    poller.stop();
  });

  it('pauses while the page is hidden and resumes with a tick when it is back in front', async () => {
    const { tick, calls } = countingTick();
    const poller = new Poller(tick, INTERVAL);
    poller.start();
    setVisibility('hidden');
    expect(poller.running).toBe(false);
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(calls()).toBe(1);
    setVisibility('visible');
    expect(poller.running).toBe(true);
    expect(calls()).toBe(2);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(calls()).toBe(3);
    poller.stop();
  });

  it('does not start on a hidden page, and starts when the page comes to the front', () => {
    const { tick, calls } = countingTick();
    visibility = 'hidden';
    const poller = new Poller(tick, INTERVAL);
    poller.start();
    expect(poller.running).toBe(false);
    expect(calls()).toBe(0);
    setVisibility('visible');
    expect(poller.running).toBe(true);
    expect(calls()).toBe(1);
    poller.stop();
  });

  it('stops listening at stop: the page coming to the front does not restart it', async () => {
    const { tick, calls } = countingTick();
    const poller = new Poller(tick, INTERVAL);
    poller.start();
    poller.stop();
    setVisibility('hidden');
    setVisibility('visible');
    await vi.advanceTimersByTimeAsync(3 * INTERVAL);
    expect(poller.running).toBe(false);
    expect(calls()).toBe(1);
  });

  it('leaves no visibility listener behind after stop (a disposed panel holds nothing)', () => {
    const listening = new Set<unknown>();
    vi.spyOn(document, 'addEventListener').mockImplementation((type, listener) => {
      if (type === 'visibilitychange') listening.add(listener);
    });
    vi.spyOn(document, 'removeEventListener').mockImplementation((type, listener) => {
      if (type === 'visibilitychange') listening.delete(listener);
    });
    const poller = new Poller(countingTick().tick, INTERVAL);
    poller.start();
    poller.start();
    expect(listening.size).toBe(1);
    poller.stop();
    expect(listening.size).toBe(0);
  });

  it('skips ticks while the previous one waits for its answer', async () => {
    let calls = 0;
    let answer: () => void = () => undefined;
    const poller = new Poller(() => {
      calls += 1;
      return new Promise<void>(resolve => {
        answer = resolve;
      });
    }, INTERVAL);
    poller.start();
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(calls).toBe(1);
    await poller.now();
    expect(calls).toBe(1);
    answer();
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(calls).toBe(2);
    poller.stop();
  });

  it('polls again after a tick that failed', async () => {
    let calls = 0;
    const poller = new Poller(() => {
      calls += 1;
      return calls === 1 ? Promise.reject(new Error('server down')) : Promise.resolve();
    }, INTERVAL);
    await expect(poller.now()).rejects.toThrow('server down');
    await poller.now();
    expect(calls).toBe(2);
  });
});

class CountingPanel extends PollingWidget {
  refreshes = 0;

  refresh(): Promise<void> {
    this.refreshes += 1;
    return Promise.resolve();
  }
}

describe('PollingWidget', () => {
  it('polls while attached and shown, not while hidden, detached or disposed', async () => {
    const panel = new CountingPanel(INTERVAL);
    expect(panel.polling).toBe(false);
    Widget.attach(panel, document.body);
    expect(panel.polling).toBe(true);
    expect(panel.refreshes).toBe(1);
    await vi.advanceTimersByTimeAsync(2 * INTERVAL);
    expect(panel.refreshes).toBe(3);

    panel.hide();
    expect(panel.polling).toBe(false);
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(panel.refreshes).toBe(3);

    panel.show();
    expect(panel.polling).toBe(true);
    expect(panel.refreshes).toBe(4);
    await vi.advanceTimersByTimeAsync(INTERVAL);
    expect(panel.refreshes).toBe(5);

    Widget.detach(panel);
    expect(panel.polling).toBe(false);
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(panel.refreshes).toBe(5);
    Widget.attach(panel, document.body);
    expect(panel.polling).toBe(true);
    expect(panel.refreshes).toBe(6);

    panel.dispose();
    expect(panel.polling).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(5 * INTERVAL);
    expect(panel.refreshes).toBe(6);
  });

  it('does not poll when attached hidden, until it is shown', () => {
    const panel = new CountingPanel(INTERVAL);
    panel.hide();
    Widget.attach(panel, document.body);
    expect(panel.polling).toBe(false);
    expect(panel.refreshes).toBe(0);
    panel.show();
    expect(panel.polling).toBe(true);
    expect(panel.refreshes).toBe(1);
    panel.dispose();
  });
});

/**
 * Unit tests of the front end's pure logic (src/__tests__). happy-dom gives Poller the `document` and
 * `window` it listens on, and lets @lumino/widgets load; the widgets themselves are tested in a real
 * JupyterLab (tests/ui).
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/__tests__/**/*.test.ts'],
    environment: 'happy-dom',
    restoreMocks: true,
    unstubGlobals: true
  }
});

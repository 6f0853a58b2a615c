// jlpm lint: ESLint's and typescript-eslint's recommended rules, with type information (so a promise
// nobody awaits or voids is an error: a panel's refresh that fails silently), on the sources and the tests.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['lib/', 'node_modules/', '.yarn/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        // the test config: it holds src/*.ts, the tests and vitest.config.mts
        project: './tsconfig.test.json',
        tsconfigRootDir: import.meta.dirname
      }
    }
  },
  {
    files: ['**/*.{js,mjs}'],
    ...tseslint.configs.disableTypeChecked
  }
);

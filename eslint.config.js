// @ts-check
// `npm run lint` (and CI): typescript-eslint's recommended rules, plus the boundaries of the
// architecture: a pure core (src/core) and strategies whose time comes from the injected Clock.
import { builtinModules } from 'node:module';
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Node's built-in modules, with and without the `node:` prefix (`fs`, `node:fs`, `fs/promises`). */
const NODE_MODULES = `^(node:.*|(${builtinModules.filter((name) => !name.startsWith('_')).join('|')})(/.*)?)$`;

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'coverage/', 'node_modules/', '.tmp/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // The compiler already reports undefined names in TypeScript, and knows the types' globals
      // (NodeJS.*, RequestInit, …) that this rule does not (typescript-eslint's advice).
      'no-undef': 'off',
      // A leading underscore marks a parameter or binding kept on purpose (an interface's
      // signature, a destructured field left out of a rest object).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // CommonJS files: the pm2 ecosystem file and the demo app (run by pm2 as plain Node scripts).
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: {
      'no-undef': 'error',
      // require() is how a CommonJS file imports.
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  {
    // The pure core: functions of samples, time and state. No I/O, no shell, no runtime config
    // (zod, node-cron); types of the config and the shell are fine, they vanish at run time.
    files: ['src/core/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { regex: NODE_MODULES, message: 'src/core is pure: I/O, time and randomness come in as arguments, not from Node modules.' },
          {
            regex: '(^|/)(shell|strategies|probes|store|pm2|api|cli|notify|records|verification)/|^\\.\\./(log|metrics|journal|outbound-http|redact)\\.js$',
            allowTypeImports: true,
            message: 'src/core is pure: it may import types from the shell, never its code (the shell calls the core, not the reverse).',
          },
          {
            // config/duration.ts is a dependency-free leaf (the one spelling of durations);
            // the rest of src/config pulls in zod, node-cron, YAML and the file system.
            regex: '(^|/)config/(?!duration\\.js$)',
            allowTypeImports: true,
            message: 'src/core may import types from src/config, not its runtime values (they pull in zod and node-cron).',
          },
        ],
      }],
    },
  },
  {
    // Strategies: time through the injected Clock (the step context), so tests drive it.
    files: ['src/strategies/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: '(^|/)shell/clock\\.js$',
          allowTypeImports: true,
          message: 'Strategies take time from the injected Clock, never the system clock (the Clock type is fine).',
        }],
      }],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Strategies take time from the injected Clock (clock.now()).' },
        { object: 'AbortSignal', property: 'timeout', message: 'Strategies time out through the injected Clock, not a wall-clock AbortSignal.timeout.' },
      ],
      'no-restricted-syntax': ['error',
        { selector: 'NewExpression[callee.name="Date"][arguments.length=0]', message: 'Strategies take time from the injected Clock: new Date(clock.now()).' },
      ],
    },
  },
);

import { readdirSync } from 'node:fs';
import path from 'node:path';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * Imports go down only (docs/design.md): cli → operations → domain → storage → shared. A module may
 * import its own layer and the layers below it, never one above. The groups are folders of src/;
 * `shared` is the top-level files (errors.ts, exit-codes.ts, types.ts, …), log/ and os/ (this
 * machine's users, scratch directories and ports, which operations of several kinds use).
 */
const LAYERS = [
  { name: 'cli', folders: ['cli'] },
  {
    name: 'operations',
    folders: [
      'backup',
      'restore',
      'verify',
      'pitr',
      'drill',
      'retention',
      'preflight',
      'schedule',
      'ops',
      'locks',
      'tui',
    ],
  },
  { name: 'domain', folders: ['catalog', 'pipeline', 'engines', 'crypto', 'config'] },
  { name: 'storage', folders: ['storage'] },
  { name: 'shared', folders: ['log', 'os'] },
];

/** A command module imports no other command: what commands share lives in src/cli/ beside commands/. */
const NOT_ANOTHER_COMMAND = {
  regex: '^\\./',
  message: 'A command does not import another command: move what they share to a module in src/cli/.',
};

/**
 * The exceptions: a command that puts its subcommands together imports their modules (and only
 * those). drill.ts reuses restore's argument resolution until restore's rework moves it out of the
 * command.
 */
const SUBCOMMANDS = {
  'src/cli/commands/backup.ts': ['sample', 'backup-base', 'backup-physical'],
  'src/cli/commands/config.ts': ['config-init', 'config-show', 'config-validate'],
  'src/cli/commands/restore.ts': ['restore-pitr'],
  'src/cli/commands/drill.ts': ['restore'],
};

function layerRules() {
  const configs = LAYERS.map((layer, i) => {
    const above = LAYERS.slice(0, i).flatMap((l) => l.folders);
    const depth = layer.name === 'shared' ? '(\\./|(\\.\\./)+)' : '(\\.\\./)+';
    return {
      files: layer.folders.flatMap((f) => [`src/${f}/**/*.ts`, `src/${f}/**/*.tsx`]),
      rules: {
        'no-restricted-imports': [
          'error',
          {
            patterns: above.length
              ? [
                  {
                    regex: `^${depth}(${above.join('|')})/`,
                    message: `${layer.name} must not import from a layer above it (${above.join(', ')}): imports go down only.`,
                  },
                ]
              : [],
          },
        ],
      },
    };
  });
  const everything = LAYERS.flatMap((l) => l.folders);
  const shared = LAYERS.find((l) => l.name === 'shared')?.folders ?? [];
  configs.push({
    files: ['src/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^\\./(${everything.filter((f) => !shared.includes(f)).join('|')})/`,
              message: 'The shared modules at the top of src/ import nothing above them.',
            },
          ],
        },
      ],
    },
  });
  // A group's leaves live in a folder of its name (commands/backup/single.ts): the group file imports
  // them, a leaf imports neither another leaf nor a command.
  configs.push({
    files: ['src/cli/commands/*/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [NOT_ANOTHER_COMMAND, { ...NOT_ANOTHER_COMMAND, regex: '^\\.\\./[\\w-]+(\\.js$|/)' }] },
      ],
    },
  });
  for (const file of readdirSync(path.join(import.meta.dirname, 'src/cli/commands')).filter((f) =>
    f.endsWith('.ts'),
  )) {
    const name = file.replace(/\.ts$/, '');
    const allowed = [...(SUBCOMMANDS[`src/cli/commands/${file}`] ?? []), `${name}/[\\w-]+`];
    configs.push({
      files: [`src/cli/commands/${file}`],
      rules: {
        'no-restricted-imports': [
          'error',
          { patterns: [{ ...NOT_ANOTHER_COMMAND, regex: `^\\./(?!(${allowed.join('|')})\\.js$)` }] },
        ],
      },
    });
  }
  return configs;
}

/*
 * Size limits for src/ (docs/development.md): a file over 600 lines or a function over 120 is split.
 * Blank lines and comments do not count, so explaining why costs nothing.
 */
const SIZE_LIMITS = {
  'max-lines': ['error', { max: 600, skipBlankLines: true, skipComments: true }],
  'max-lines-per-function': ['error', { max: 120, skipBlankLines: true, skipComments: true }],
};

function sizeRules() {
  return [{ files: ['src/**/*.ts', 'src/**/*.tsx'], rules: SIZE_LIMITS }];
}

/*
 * A sealed engine boundary (issue 19): what differs per engine is a property or method of its family
 * or flavor (src/engines/family.ts, flavor.ts), not a comparison with an engine's name elsewhere.
 */
const ENGINE_NAME = '/^(postgres|mysql|mariadb)$/';
const ENGINE_NAME_MESSAGE =
  'Compare no engine name outside src/engines/: ask the engine family or flavor (engineFamily(), serverFlavorOf()) for a property instead.';

function engineBoundaryRules() {
  return [
    {
      files: ['src/**/*.ts', 'src/**/*.tsx'],
      ignores: ['src/engines/**'],
      rules: {
        'no-restricted-syntax': [
          'error',
          {
            selector: `BinaryExpression[operator=/^[!=]==?$/] > Literal[value=${ENGINE_NAME}]`,
            message: ENGINE_NAME_MESSAGE,
          },
          { selector: `SwitchCase > Literal.test[value=${ENGINE_NAME}]`, message: ENGINE_NAME_MESSAGE },
        ],
      },
    },
  ];
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', 'bench/work/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...layerRules(),
  ...sizeRules(),
  ...engineBoundaryRules(),
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: {
        process: 'readonly',
        console: 'readonly',
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);

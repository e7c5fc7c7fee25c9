// ESLint: typescript-eslint's strict, type-checked rules over every TypeScript source.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'vagrant/', 'compose-examples/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Numbers and booleans read fine in messages; objects must be formatted on purpose.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      // With noUncheckedIndexedAccess every index may be undefined: `!` marks, visibly, where the code knows it is not.
      '@typescript-eslint/no-non-null-assertion': 'off',
      // winston's transports subclass a TransportStream its typings declare apart: the rule cannot follow it.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
      // `_name` marks a value left unused on purpose (a destructured field dropped, a handler's request).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);

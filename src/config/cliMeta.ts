/**
 * What a settings field may say about its command-line flag, beside its `.describe()` help text.
 * Most fields need none of it: the flag is spelled from the field's path (`sessions.redis.keyPrefix`
 * → `--sessions-redis-key-prefix`) and its parser from the field's type. Give it in one
 * `.meta({ cli: ... })` call: zod merges metadata key by key, so a second `cli` replaces the first.
 */
export interface SettingCli {
  /** Long flag instead of the one spelled from the path, e.g. `--max-tokens` for `sampling.maxTokens`. */
  flag?: string;
  /** Other spellings, kebab-case: the original gateway's names that are not our flag in snake_case. */
  aliases?: string[];
  /** Placeholder shown in help instead of the one guessed from the field, e.g. `<file.gguf>`. */
  arg?: string;
  /** Space- or comma-separated, repeatable (`--projects maze,driving`, `--projects maze driving`). */
  list?: boolean;
  /**
   * A password, key or token: also `--<flag>-file` (and `<key>File` in the config file), masked
   * whenever settings are printed, and a warning when it is given on the command line.
   */
  secret?: boolean;
}

declare module "zod/v4/core" {
  interface GlobalMeta {
    cli?: SettingCli;
  }
}

import { z } from "zod";
import type { SettingCli } from "../cliMeta.js";

/** Building blocks shared by the sections of the settings schema (../schema.ts). */

export const positiveInt = z.number().int().positive();
export const nonNegativeInt = z.number().int().nonnegative();
export const seconds = z.number().nonnegative();
export const port = z.number().int().min(0).max(65535);

/** Flag metadata (cliMeta.ts) for a field whose flag is not spelled from its path. */
export const flag = (name: string, more: Omit<SettingCli, "flag"> = {}) => ({ cli: { flag: name, ...more } });
export const secret = { cli: { secret: true } };
